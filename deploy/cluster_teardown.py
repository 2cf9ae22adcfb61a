"""Remove a test cluster, or list what is left of it, knowing nothing but its name.

Whatever an `up` made (and however far it got) is found from the name alone:
namespaces `<name>-hub` / `<name>-nodeI`, cgroup parents `/<name>-nodeI` in
every hierarchy, processes running from its state dir, mounts under its state
and data dirs, the root veth `<name>-root`. So `remove` works after a failed
or interrupted `up`, without the state file, and any number of times.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from deploy import cluster_config as cfg
from deploy import cluster_host as host


class TeardownError(RuntimeError):
    """Something of the cluster could not be removed; the message lists what."""


def remove(name: str) -> None:
    """Kill every process of the cluster, then remove its mounts, cgroups, netns, dirs."""
    problems: list[str] = []
    # SIGKILL at once: nothing of the cluster is kept, and shims outlive a dead dockerd
    # anyway, so dockerd's own shutdown would only cost seconds.
    for _ in range(100):
        pids = processes(name)
        if not pids:
            break
        host.kill(pids)
        time.sleep(0.05)
    else:
        problems.append(f"processes still running: {sorted(processes(name))}")
    for point in sorted(host.mounts_under(_dirs(name)), key=len, reverse=True):
        if host.run(["umount", "-l", point], check=False).returncode != 0:
            problems.append(f"cannot unmount {point}")
    for tree in host.cgroup_trees(cfg.node_cgroup_re(name)):
        if not host.remove_cgroup_tree(tree):
            problems.append(f"cgroup {tree} is busy")
    for ns in namespaces(name):
        r = host.run(["ip", "netns", "delete", ns], check=False)
        if r.returncode != 0:
            problems.append(f"netns {ns}: {r.stderr.strip()}")
    veth = cfg.root_veth(name)
    if host.interface_exists(veth):  # gone with the hub namespace, unless that was lost
        host.run(["ip", "link", "delete", veth], check=False)
    for d in _dirs(name):
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            problems.append(f"cannot remove {d}")
    if problems:
        raise TeardownError(f"cluster {name} not fully removed: " + "; ".join(problems))


def leftovers(name: str) -> list[str]:
    """What of cluster `name` exists on the machine (empty after `remove`)."""
    found = [f"netns {ns}" for ns in namespaces(name)]
    found += [f"process {p}: {' '.join(host.command_line(p))[:100]}" for p in processes(name)]
    found += [f"cgroup {t}" for t in host.cgroup_trees(cfg.node_cgroup_re(name))]
    found += [
        f"mount {m}" for m in host.mounts_under([*_dirs(name), host.NETNS_DIR]) if _is_ours(name, m)
    ]
    if host.interface_exists(cfg.root_veth(name)):
        found.append(f"interface {cfg.root_veth(name)}")
    found += [f"directory {d}" for d in _dirs(name) if d.exists()]
    return found


def namespaces(name: str) -> list[str]:
    rx = cfg.node_netns_re(name)
    return [ns for ns in host.netns_names() if rx.match(ns)]


def processes(name: str) -> set[int]:
    """Processes in the namespaces, in the cgroup parents, or running from the state dir."""
    pids = host.pids_in_netns(namespaces(name))
    pids |= host.pids_in_cgroups(host.cgroup_trees(cfg.node_cgroup_re(name)))
    pids |= host.pids_with_argument(f"{cfg.state_dir(name)}/")
    return {p for p in pids if host.alive(p)}


def _dirs(name: str) -> list[Path]:
    return [cfg.state_dir(name), cfg.data_dir(name)]


def _is_ours(name: str, mount_point: str) -> bool:
    """A mount under the dirs, or the bind mount of one of the cluster's namespaces."""
    if mount_point == str(host.NETNS_DIR) or mount_point.startswith(f"{host.NETNS_DIR}/"):
        return bool(cfg.node_netns_re(name).match(Path(mount_point).name))
    return True
