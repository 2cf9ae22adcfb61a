"""A multi-node Docker Swarm on this machine, for tests and for trying multi-host by hand.

`python -m deploy.cluster up|down|status [--nodes 3] [--memory-mb 2048,2048,1024]
[--name sc1] [--registry HOST:PORT]`, or the `Cluster` class. Each node is a
dockerd in its own network namespace (and private mount namespace, with its
own /proc/meminfo so Swarm sees the node's memory size); the nodes share a
bridge in a hub namespace, which the root namespace reaches through a routed
veth at `hub_address`. The recipe and its pitfalls are in
../shared/notes/swarm-multihost.md; the names and addresses come from
`deploy.cluster_config`.

It must never touch the machine's default dockerd (it only reads images from
it in `load_image`), its socket or /var/lib/docker. `down` removes everything
a cluster made, whatever state an earlier `up` or `down` left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy import cluster_config as cfg
from deploy import cluster_host as host
from deploy import cluster_state as state
from deploy import cluster_teardown as teardown
from deploy.cluster_config import ClusterSpec, ConfigError, Node

__all__ = ["Cluster", "ClusterError", "ConfigError", "Node"]

DEFAULT_ENGINE = "unix:///var/run/docker.sock"
REQUIRED_COMMANDS = ("ip", "nsenter", "unshare", "mount", "dockerd", "docker")
DOCKERD_START_TIMEOUT = 30.0
READY_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    """The cluster could not be brought up, used or removed; the message says why."""


class Cluster:
    """One named cluster: `up()` builds it, `down()` removes all of it (and always works).

    Arguments left out are taken from the running cluster of that name, if
    any, else from the defaults (3 nodes of 2048, 2048 and 1024 MB, the
    lowest free index, a registry at `<hub_address>:5000`). `owner_pid` marks
    a cluster as belonging to that process: `reap_stale()` removes it once the
    process is gone (the CLI's clusters have none and stay until `down`).
    """

    def __init__(
        self,
        name: str = cfg.DEFAULT_NAME,
        *,
        nodes: int | None = None,
        memory_mb: Sequence[int] | None = None,
        registry: str | None = None,
        index: int | None = None,
        owner_pid: int | None = None,
    ) -> None:
        cfg.check_name(name)
        saved = state.read(name)
        if memory_mb is None:
            if nodes is None and saved is not None:
                memory_mb = saved.memory_mb
            else:
                memory_mb = cfg.default_memory(nodes or cfg.DEFAULT_NODES)
        elif nodes is not None and nodes != len(memory_mb):
            raise ConfigError(f"nodes: {nodes} nodes but {len(memory_mb)} memory sizes")
        self._memory = tuple(memory_mb)
        self._registry = registry or (saved.registry if saved else None)
        self._fixed_index = index
        self._owner_pid = owner_pid
        chosen = index if index is not None else (saved.index if saved else None)
        if chosen is None:
            chosen = cfg.pick_index(name, state.claimed_indices())
        self._spec = cfg.plan_cluster(name, chosen, self._memory, self._registry)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # ---- what the cluster is

    @property
    def spec(self) -> ClusterSpec:
        return self._spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes, node 1 first; `Node.docker_url` is the `unix://` URL of its dockerd."""
        return self._spec.nodes

    @property
    def manager(self) -> Node:
        """Node 1, the only Swarm manager."""
        return self._spec.manager

    @property
    def hub_address(self) -> str:
        """The root namespace's address as the nodes see it (e.g. for the registry, NATS)."""
        return self._spec.hub_address

    @property
    def registry(self) -> str:
        """The registry the nodes trust without TLS (any port on the hub is trusted too)."""
        return self._spec.registry

    def node(self, i: int) -> Node:
        if not 1 <= i <= len(self.nodes):
            raise ClusterError(f"node {i}: the cluster has nodes 1 to {len(self.nodes)}")
        return self.nodes[i - 1]

    # ---- up and down

    def up(self, *, keep_on_failure: bool = False) -> float:
        """Build the cluster and wait until every node is Ready; returns the seconds taken.

        Whatever this name left behind is removed first. On failure everything
        is removed again (unless `keep_on_failure`) and ClusterError says why,
        with the end of each dockerd's log.
        """
        started = time.monotonic()
        _check_prerequisites()
        self.down()
        self._claim()
        try:
            self._make_network()
            for node in self.nodes:
                self._write_node_files(node)
                self._launch(node)
            for node in self.nodes:
                self._wait_dockerd(node)
            self._form_swarm()
        except BaseException as err:
            logs = self._log_tails()
            if not keep_on_failure:
                with contextlib.suppress(Exception):
                    self.down()
            if isinstance(err, Exception):
                raise ClusterError(f"cluster {self.name} did not come up: {err}\n{logs}") from err
            raise
        return time.monotonic() - started

    def down(self) -> float:
        """Remove every process, mount, cgroup, namespace, interface and directory of the cluster.

        Safe to run at any time, any number of times; returns the seconds taken.
        Raises ClusterError only if something could not be removed.
        """
        started = time.monotonic()
        try:
            teardown.remove(self.name)
        except teardown.TeardownError as err:
            raise ClusterError(str(err)) from err
        finally:
            self._reap()
        return time.monotonic() - started

    def leftovers(self) -> list[str]:
        """What of this cluster exists on the machine (empty after `down`)."""
        return teardown.leftovers(self.name)

    @classmethod
    def reap_stale(cls) -> list[str]:
        """Remove the clusters whose owner process is gone; returns their names."""
        reaped = []
        for name, saved in state.all_states().items():
            if saved.owner_pid is not None and not host.alive(saved.owner_pid):
                cls(name).down()
                reaped.append(name)
        return reaped

    def status(self) -> str:
        """The nodes, and Swarm's view of them if the manager answers."""
        if state.read(self.name) is None and not self.leftovers():
            return f"cluster {self.name} is not up"
        lines = [f"cluster {self.name} (index {self._spec.index}, hub {self.hub_address})"]
        for n in self.nodes:
            up = "up" if host.docker_ping(n.socket_path) else "down"
            lines.append(f"  {n.name:<14} {n.address:<12} {n.memory_mb:>5} MB  dockerd {up}")
        if host.docker_ping(self.manager.socket_path):
            r = self.docker(1, "node", "ls", check=False)
            lines.append(r.stdout.rstrip() or r.stderr.rstrip())
        return "\n".join(lines)

    def is_ready(self) -> bool:
        """True if the manager sees every node Ready."""
        if not host.docker_ping(self.manager.socket_path):
            return False
        r = self.docker(1, "node", "ls", "--format", "{{.Hostname}} {{.Status}}", check=False)
        ready = {line.split()[0] for line in r.stdout.splitlines() if line.endswith(" Ready")}
        return ready == {n.name for n in self.nodes}

    # ---- faults and use

    def link_down(self, i: int) -> None:
        """Take node i's eth0 down: to the others it is a lost host (its dockerd keeps running)."""
        _run(["ip", "-n", self.node(i).netns, "link", "set", "eth0", "down"])

    def link_up(self, i: int) -> None:
        _run(["ip", "-n", self.node(i).netns, "link", "set", "eth0", "up"])

    def kill_dockerd(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Signal node i's dockerd and wait until it is gone (its containers may live on)."""
        node = self.node(i)
        pids = self._dockerd_pids(node)
        host.kill(pids, sig)
        stopped = host.wait_until(lambda: not any(map(host.alive, pids)), 30)
        self._reap()
        if not stopped:
            raise ClusterError(f"dockerd of {node.name} did not stop within 30 s")

    def start_dockerd(self, i: int) -> None:
        """Start node i's dockerd again (same data, so it rejoins the swarm by itself)."""
        node = self.node(i)
        if self._dockerd_pids(node):
            return
        node.pidfile.unlink(missing_ok=True)
        self._launch(node)
        self._wait_dockerd(node)

    def docker(
        self,
        i: int,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker -H <node i> ARGS...`; raises ClusterError if `check` and it fails."""
        argv = ["docker", "-H", self.node(i).docker_url, *args]
        return _run(argv, check=check, input=input, timeout=timeout)

    def load_image(self, ref: str, *, source: str = DEFAULT_ENGINE) -> str:
        """Copy image `ref` from the default engine into every node; returns its image ID.

        Create services with the ID and `--no-resolve-image`: a plain tag makes
        every task start try Docker Hub first.
        """
        src = ["docker", "-H", source]
        image_id = _run([*src, "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()
        loads = {n.name: ["docker", "-H", n.docker_url, "load", "-q"] for n in self.nodes}
        failed = host.fan_out([*src, "save", ref], loads)
        if failed:
            raise ClusterError(f"load_image {ref}: " + "; ".join(failed))
        return image_id

    # ---- the steps

    def _claim(self) -> None:
        """Take an address block no other cluster holds, and record it in the state file."""
        with state.locked():
            claimed = state.claimed_indices()
            claimed.pop(self.name, None)
            if self._fixed_index is None:
                index = cfg.pick_index(self.name, claimed)
                self._spec = cfg.plan_cluster(self.name, index, self._memory, self._registry)
            elif self._spec.index in claimed.values():
                raise ClusterError(f"index {self._spec.index} is used by another cluster")
            prefix = f"10.251.{self._spec.base}."
            if users := host.addresses_in_use(prefix):
                raise ClusterError(f"{prefix}0/24 is in use on {', '.join(users)}")
            saved = state.SavedState(
                name=self.name,
                index=self._spec.index,
                memory_mb=self._memory,
                registry=self._spec.registry,
                owner_pid=self._owner_pid,
            )
            state.write(saved)

    def _make_network(self) -> None:
        for step in cfg.network_commands(self._spec):
            _run(step)

    def _write_node_files(self, node: Node) -> None:
        node.state_dir.mkdir(parents=True, exist_ok=True)
        dockerd = shutil.which("dockerd")
        if dockerd and not node.dockerd_link.is_symlink():
            node.dockerd_link.symlink_to(dockerd)
        node.containerd_run.mkdir(exist_ok=True)
        node.data_root.mkdir(parents=True, exist_ok=True)
        config = cfg.daemon_config(self._spec, node)
        node.config_path.write_text(json.dumps(config, indent=2) + "\n")
        meminfo = Path("/proc/meminfo").read_text()
        node.meminfo_path.write_text(cfg.edit_meminfo(meminfo, node.memory_mb))

    def _launch(self, node: Node) -> None:
        argv = cfg.dockerd_command(node)
        with node.log_path.open("ab") as log:
            self._procs[node.index] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the caller must not reach the nodes
                env=host.clean_env(),
            )

    def _wait_dockerd(self, node: Node) -> None:
        proc = self._procs.get(node.index)

        def answered() -> bool:
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"dockerd of {node.name} exited ({proc.returncode})")
            return host.docker_ping(node.socket_path)

        if not host.wait_until(answered, DOCKERD_START_TIMEOUT):
            raise ClusterError(f"dockerd of {node.name} not answering after 30 s")

    def _form_swarm(self) -> None:
        self.docker(1, *cfg.swarm_init_args(self._spec))
        token = self.docker(1, "swarm", "join-token", "-q", "worker").stdout.strip()
        workers = self.nodes[1:]
        with ThreadPoolExecutor(max(1, len(workers))) as pool:
            joins = [
                pool.submit(self.docker, n.index, *cfg.swarm_join_args(self._spec, n, token))
                for n in workers
            ]
            for join in joins:
                join.result()
        if not host.wait_until(self.is_ready, READY_TIMEOUT, interval=0.2):
            raise ClusterError(
                f"not every node Ready after {READY_TIMEOUT:.0f} s:\n{self.status()}"
            )

    # ---- our own processes

    def _dockerd_pids(self, node: Node) -> list[int]:
        config = str(node.config_path)
        return [p for p in host.pids_with_argument(config) if host.alive(p)]

    def _reap(self) -> None:
        """Collect the exit status of our dockerds that ended (no zombies left behind)."""
        for i, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[i]

    def _log_tails(self) -> str:
        parts = []
        for n in self.nodes:
            if text := host.tail(n.log_path):
                parts.append(f"--- {n.log_path} (last lines)\n{text}")
        return "\n".join(parts)


def _run(
    argv: Sequence[str], *, check: bool = True, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    try:
        return host.run(argv, check=check, input=input, timeout=timeout)
    except host.HostError as err:
        raise ClusterError(str(err)) from err


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the cluster needs root (network namespaces, mounts, cgroups)")
    if missing := [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]:
        raise ClusterError(f"missing commands: {', '.join(missing)} (run deploy/bootstrap.sh)")


def _usage(cluster: Cluster) -> str:
    lines = ["Point docker at the manager (Swarm commands) or at any node:"]
    lines.append(f"  export DOCKER_HOST={cluster.manager.docker_url}")
    lines += [f"  docker -H {n.docker_url} ps    # {n.name}" for n in cluster.nodes]
    lines.append(f"Nodes reach this namespace at {cluster.hub_address}; insecure registry")
    lines.append(f"{cluster.registry} (any port on {cluster.spec.subnet}). Remove it all:")
    lines.append(f"  python -m deploy.cluster down --name {cluster.name}   (or make cluster-down)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["up", "down", "status"])
    p.add_argument("--name", default=cfg.DEFAULT_NAME)
    p.add_argument("--nodes", type=int, default=None, help="number of nodes (default 3)")
    p.add_argument("--memory-mb", default=None, help="per node, e.g. 2048,2048,1024")
    p.add_argument("--registry", default=None, help="insecure registry (default <hub>:5000)")
    p.add_argument("--index", type=int, default=None, help="address block 0..3 (default: free)")
    p.add_argument("--keep-on-failure", action="store_true", help="leave a failed up for study")
    args = p.parse_args(argv)
    try:
        memory = cfg.parse_memory(args.memory_mb) if args.memory_mb else None
        cluster = Cluster(
            args.name, nodes=args.nodes, memory_mb=memory, registry=args.registry, index=args.index
        )
        if args.command == "up":
            took = cluster.up(keep_on_failure=args.keep_on_failure)
            print(f"{cluster.status()}\n\nup in {took:.1f} s. {_usage(cluster)}")
        elif args.command == "down":
            print(f"cluster {args.name} removed in {cluster.down():.1f} s")
        else:
            print(cluster.status())
            return 0 if cluster.is_ready() else 1
    except (ClusterError, ConfigError) as err:
        print(f"cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
