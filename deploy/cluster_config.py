"""The plan of a test cluster, computed from its name, index and node sizes.

Names (network namespaces, interfaces, cgroup parents, hostnames), addresses,
paths, each node's `daemon.json` and the edited `/proc/meminfo` that gives a
node its memory size. Pure: no subprocess, no file written, nothing read but
the arguments. `deploy.cluster` carries the plan out.

Address plan, all inside 10.251.0.0/16; cluster index k (0..3), B = 32k:
  hub subnet      10.251.B.0/24: bridge .1, root namespace .2, node I .(10+I)
  node I bip      10.251.(B+I).1/24
  node I pools    10.251.(B+4+4I).0/22, /24 each (docker_gwbridge, bridges)
  swarm overlays  10.251.(128+B).0/19, /24 each
so cluster 0 has the notes' addresses (hub 10.251.0.2, nodes 10.251.0.1I,
overlays in 10.251.128.0/17) and four clusters never overlap.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_ROOT = Path("/run/servicectl-cluster")
DATA_ROOT = Path("/var/lib/servicectl-cluster")
MAX_CLUSTERS = 4
MAX_NODES = 6
DEFAULT_NAME = "sc1"
DEFAULT_NODES = 3
REGISTRY_PORT = 5000
HEARTBEAT = "1s"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# The process name of the nodes' dockerds: `pgrep -x dockerd` (the fault tests'
# way to find the machine's engine) must not find them; `pgrep dockerd` still does.
DOCKERD_NAME = "sc-dockerd"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the final NUL


class ConfigError(ValueError):
    """A cluster that cannot be built as asked (the message says which rule)."""


@dataclass(frozen=True, kw_only=True)
class Node:
    """One node: a network namespace with one dockerd in it."""

    cluster: str
    index: int
    memory_mb: int
    address: str
    bip: str
    address_pool: str
    state_dir: Path
    data_root: Path

    @property
    def name(self) -> str:
        """The node's hostname, so also its name in Swarm and in `docker node ls`."""
        return f"{self.cluster}-node{self.index}"

    @property
    def netns(self) -> str:
        return self.name

    @property
    def hub_port(self) -> str:
        """The hub end of the node's veth (its own end is `eth0`)."""
        return f"n{self.index}"

    @property
    def cgroup_parent(self) -> str:
        return f"/{self.name}"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "docker.sock"

    @property
    def docker_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def exec_root(self) -> Path:
        return self.state_dir / "x"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "dockerd.pid"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def meminfo_path(self) -> Path:
        return self.state_dir / "meminfo"

    @property
    def containerd_run(self) -> Path:
        """Bound over /run/containerd in the node: its shim sockets, apart from the host's."""
        return self.state_dir / "containerd-run"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def dockerd_link(self) -> Path:
        """dockerd under the name `DOCKERD_NAME` (see there)."""
        return self.state_dir.parent / DOCKERD_NAME


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """Everything `deploy.cluster` needs to build, use and remove one cluster."""

    name: str
    index: int
    registry: str
    nodes: tuple[Node, ...]

    @property
    def base(self) -> int:
        return 32 * self.index

    @property
    def hub_netns(self) -> str:
        return f"{self.name}-hub"

    @property
    def bridge(self) -> str:
        return "br0"

    @property
    def subnet(self) -> str:
        return f"10.251.{self.base}.0/24"

    @property
    def bridge_address(self) -> str:
        return f"10.251.{self.base}.1"

    @property
    def hub_address(self) -> str:
        """The root namespace's address on the hub: where nodes reach the platform."""
        return f"10.251.{self.base}.2"

    @property
    def root_veth(self) -> str:
        return root_veth(self.name)

    @property
    def root_veth_peer(self) -> str:
        return "root"

    @property
    def swarm_pool(self) -> str:
        return f"10.251.{128 + self.base}.0/19"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def state_dir(self) -> Path:
        return state_dir(self.name)

    @property
    def data_dir(self) -> Path:
        return data_dir(self.name)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "cluster.json"


def state_dir(name: str) -> Path:
    return STATE_ROOT / name


def data_dir(name: str) -> Path:
    return DATA_ROOT / name


def root_veth(name: str) -> str:
    """The root namespace's end of the routed veth (at most 15 characters)."""
    return f"{name}-root"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"cluster name {name!r}: use 1 to 10 lowercase letters or digits, "
            "starting with a letter (it prefixes namespace and interface names)"
        )
    return name


def default_memory(nodes: int) -> tuple[int, ...]:
    """2048 MB per node, the last one 1024 MB (3 nodes: 2048, 2048, 1024)."""
    if nodes < 1:
        raise ConfigError(f"nodes: {nodes} is not a node count (1 to {MAX_NODES})")
    return (2048,) * (nodes - 1) + (1024,)


def parse_memory(text: str) -> tuple[int, ...]:
    """`"2048,2048,1024"` -> (2048, 2048, 1024); sizes in MB, at least 64 each."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"memory-mb: {text!r} is not a comma-separated list of MB") from None
    if any(size < 64 for size in sizes):
        raise ConfigError(f"memory-mb: {text!r}: every node needs at least 64 MB")
    return sizes


def pick_index(name: str, claimed: Mapping[str, int]) -> int:
    """The index `name` already holds, else the lowest one no other cluster holds."""
    if name in claimed:
        return claimed[name]
    taken = {index for other, index in claimed.items() if other != name}
    for index in range(MAX_CLUSTERS):
        if index not in taken:
            return index
    raise ConfigError(
        f"no free cluster index: {MAX_CLUSTERS} clusters exist already "
        f"({', '.join(sorted(claimed))}); remove one with `python -m deploy.cluster down --name`"
    )


def plan_cluster(
    name: str, index: int, memory_mb: Sequence[int], registry: str | None = None
) -> ClusterSpec:
    """The cluster `name` with one node per entry of `memory_mb` (MB), node 1 the manager."""
    check_name(name)
    if not 0 <= index < MAX_CLUSTERS:
        raise ConfigError(f"index: {index} is outside 0..{MAX_CLUSTERS - 1}")
    if not 1 <= len(memory_mb) <= MAX_NODES:
        raise ConfigError(f"nodes: {len(memory_mb)} is outside 1..{MAX_NODES}")
    base = 32 * index
    nodes = tuple(
        Node(
            cluster=name,
            index=i,
            memory_mb=mb,
            address=f"10.251.{base}.{10 + i}",
            bip=f"10.251.{base + i}.1/24",
            address_pool=f"10.251.{base + 4 + 4 * i}.0/22",
            state_dir=state_dir(name) / f"n{i}",
            data_root=data_dir(name) / f"node{i}",
        )
        for i, mb in enumerate(memory_mb, start=1)
    )
    spec = ClusterSpec(
        name=name,
        index=index,
        registry=registry or f"10.251.{base}.2:{REGISTRY_PORT}",
        nodes=nodes,
    )
    for node in nodes:
        for path in (node.socket_path, node.exec_root / "containerd" / "containerd.sock"):
            if len(str(path)) > UNIX_PATH_MAX:
                raise ConfigError(f"socket path {path} is longer than {UNIX_PATH_MAX} bytes")
    return spec


def daemon_config(spec: ClusterSpec, node: Node) -> dict[str, Any]:
    """The node's `daemon.json`: nothing shared with the machine's own dockerd."""
    return {
        "data-root": str(node.data_root),
        "exec-root": str(node.exec_root),
        "pidfile": str(node.pidfile),
        "hosts": [node.docker_url],
        "bip": node.bip,
        "default-address-pools": [{"base": node.address_pool, "size": 24}],
        "cgroup-parent": node.cgroup_parent,
        "containerd-namespace": node.name,
        "containerd-plugins-namespace": f"{node.name}-plugins",
        "deprecated-key-path": str(node.state_dir / "key.json"),
        "dns": ["127.0.0.1"],
        # the registry named, and any registry on the hub (the CIDR covers every port)
        "insecure-registries": sorted({spec.registry, spec.subnet}),
        "live-restore": False,
    }


def swarm_init_args(spec: ClusterSpec) -> list[str]:
    m = spec.manager
    return [
        "swarm",
        "init",
        "--advertise-addr",
        m.address,
        "--listen-addr",
        f"{m.address}:2377",
        "--default-addr-pool",
        spec.swarm_pool,
        "--default-addr-pool-mask-length",
        "24",
        "--dispatcher-heartbeat",
        HEARTBEAT,
    ]


def swarm_join_args(spec: ClusterSpec, node: Node, token: str) -> list[str]:
    return [
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        node.address,
        "--listen-addr",
        f"{node.address}:2377",
        f"{spec.manager.address}:2377",
    ]


def network_commands(spec: ClusterSpec) -> list[list[str]]:
    """The `ip` commands that build the hub, the routed veth and each node's namespace."""
    hub = ["ip", "-n", spec.hub_netns]
    root_veth = ["ip", "link", "add", spec.root_veth, "type", "veth"]
    steps = [
        ["ip", "netns", "add", spec.hub_netns],
        [*hub, "link", "set", "lo", "up"],
        [*hub, "link", "add", spec.bridge, "type", "bridge"],
        [*hub, "addr", "add", f"{spec.bridge_address}/24", "dev", spec.bridge],
        [*hub, "link", "set", spec.bridge, "up"],
        [*root_veth, "peer", "name", spec.root_veth_peer, "netns", spec.hub_netns],
        ["ip", "addr", "add", f"{spec.hub_address}/24", "dev", spec.root_veth],
        ["ip", "link", "set", spec.root_veth, "up"],
        [*hub, "link", "set", spec.root_veth_peer, "master", spec.bridge, "up"],
    ]
    for n in spec.nodes:
        node = ["ip", "-n", n.netns]
        port = [*hub, "link", "add", n.hub_port, "type", "veth"]
        steps += [
            ["ip", "netns", "add", n.netns],
            [*port, "peer", "name", "eth0", "netns", n.netns],
            [*hub, "link", "set", n.hub_port, "master", spec.bridge, "up"],
            [*node, "addr", "add", f"{n.address}/24", "dev", "eth0"],
            [*node, "link", "set", "eth0", "up"],
            [*node, "link", "set", "lo", "up"],
        ]
    return steps


def dockerd_command(node: Node) -> list[str]:
    """The command that starts the node's dockerd in its netns and a private mount namespace.

    nsenter, not `ip netns exec` (which remounts /sys and hides the cgroups from
    dockerd); inside, a fresh sysfs shows dockerd the node's own interfaces, the
    cgroup mounts are moved back onto it, /proc/meminfo gives the node its size
    and /run/containerd its own directory for shim sockets. The mount namespace
    is a slave, so none of the node's mounts shows in the root namespace.
    """
    q = shlex.quote
    aside = q(str(node.state_dir / "cgroup"))
    script = "; ".join(
        [
            "set -e",
            f"hostname {q(node.name)}",
            f"mkdir -p {aside} /run/containerd",
            f"mount --rbind /sys/fs/cgroup {aside}",
            "mount -t sysfs sysfs /sys",
            f"mount --move {aside} /sys/fs/cgroup",
            f"mount --bind {q(str(node.meminfo_path))} /proc/meminfo",
            f"mount --bind {q(str(node.containerd_run))} /run/containerd",
            f"exec {q(str(node.dockerd_link))} --config-file {q(str(node.config_path))}",
        ]
    )
    return [
        *("nsenter", f"--net=/run/netns/{node.netns}", "--"),
        *("unshare", "--mount", "--uts", "--propagation", "slave", "--"),
        *("sh", "-c", script),
    ]


def edit_meminfo(text: str, memory_mb: int) -> str:
    """`/proc/meminfo` with MemTotal set to `memory_mb` (MemFree, MemAvailable capped)."""
    total_kb = memory_mb * 1024
    fields = {"MemTotal"}
    capped = {"MemFree", "MemAvailable"}
    out: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^(\w+):(\s+)(\d+)( kB)?$", line)
        if m and m.group(1) in fields | capped:
            key, spaces, number, unit = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            value = total_kb if key in fields else min(int(number), total_kb)
            width = len(spaces) + len(number)
            line = f"{key}: {str(value).rjust(width - 1)}{unit}"
        out.append(line)
    if not any(line.startswith("MemTotal:") for line in out):
        raise ConfigError("meminfo has no MemTotal line")
    return "\n".join(out) + "\n"


def node_netns_re(name: str) -> re.Pattern[str]:
    """Matches the names of every namespace of cluster `name` (hub and nodes)."""
    return re.compile(rf"^{re.escape(name)}-(hub|node\d+)$")


def node_cgroup_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}-node\d+$")
