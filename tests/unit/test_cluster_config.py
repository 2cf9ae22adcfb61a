"""The test cluster's plan: addresses, names, daemon.json, meminfo, commands (no I/O)."""

from __future__ import annotations

import ipaddress
import itertools
import json

import pytest

from deploy import cluster_config as cfg

MEMINFO = """MemTotal:       24684332 kB
MemFree:        24223456 kB
MemAvailable:   24238896 kB
Buffers:           30012 kB
Cached:           269220 kB
SwapTotal:             0 kB
HugePages_Total:       0
"""


def test_cluster_zero_has_the_addresses_of_the_notes() -> None:
    spec = cfg.plan_cluster("sc1", 0, (2048, 2048, 1024))
    assert spec.hub_address == "10.251.0.2"
    assert spec.bridge_address == "10.251.0.1"
    assert [n.address for n in spec.nodes] == ["10.251.0.11", "10.251.0.12", "10.251.0.13"]
    assert spec.manager.index == 1
    assert spec.registry == "10.251.0.2:5000"
    pool = ipaddress.IPv4Network(spec.swarm_pool)
    assert pool.subnet_of(ipaddress.IPv4Network("10.251.128.0/17"))
    assert [n.memory_mb for n in spec.nodes] == [2048, 2048, 1024]


def _networks(spec: cfg.ClusterSpec) -> list[ipaddress.IPv4Network]:
    nets = [ipaddress.IPv4Network(spec.subnet), ipaddress.IPv4Network(spec.swarm_pool)]
    for n in spec.nodes:
        nets.append(ipaddress.IPv4Network(n.bip, strict=False))
        nets.append(ipaddress.IPv4Network(n.address_pool))
    return nets


def test_clusters_and_nodes_never_share_addresses() -> None:
    specs = [cfg.plan_cluster(f"c{i}", i, (1024,) * cfg.MAX_NODES) for i in range(cfg.MAX_CLUSTERS)]
    nets = [net for spec in specs for net in _networks(spec)]
    whole = ipaddress.IPv4Network("10.251.0.0/16")
    assert all(net.subnet_of(whole) for net in nets)
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b), (a, b)
    hubs = {spec.hub_address for spec in specs}
    assert len(hubs) == cfg.MAX_CLUSTERS
    for spec in specs:
        subnet = ipaddress.IPv4Network(spec.subnet)
        for n in spec.nodes:
            assert ipaddress.IPv4Address(n.address) in subnet


def test_names_fit_the_kernel_limits() -> None:
    spec = cfg.plan_cluster("abcdefghij", 3, (1024,) * cfg.MAX_NODES)
    assert len(spec.root_veth) <= 15
    for n in spec.nodes:
        assert len(n.hub_port) <= 15
        assert len(str(n.socket_path)) <= cfg.UNIX_PATH_MAX
        assert n.docker_url == f"unix://{n.socket_path}"
        assert n.netns == n.name == f"abcdefghij-node{n.index}"
        assert n.cgroup_parent == f"/abcdefghij-node{n.index}"


@pytest.mark.parametrize("name", ["", "Sc1", "1sc", "sc-1", "abcdefghijk", "a/b", "sc 1"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(cfg.ConfigError, match="cluster name"):
        cfg.check_name(name)


@pytest.mark.parametrize(
    ("index", "sizes"), [(-1, (1024,)), (cfg.MAX_CLUSTERS, (1024,)), (0, ()), (0, (1024,) * 7)]
)
def test_impossible_clusters_are_refused(index: int, sizes: tuple[int, ...]) -> None:
    with pytest.raises(cfg.ConfigError):
        cfg.plan_cluster("sc1", index, sizes)


def test_daemon_config_shares_nothing_with_the_default_engine() -> None:
    spec = cfg.plan_cluster("sc1", 0, (2048, 1024), registry="10.251.0.2:41234")
    node = spec.nodes[1]
    conf = cfg.daemon_config(spec, node)
    json.dumps(conf)
    for key in ("data-root", "exec-root", "pidfile", "deprecated-key-path"):
        assert "/var/lib/docker" not in conf[key] and "/var/run/docker" not in conf[key]
        assert "sc1" in conf[key]
    assert conf["hosts"] == [node.docker_url]
    assert conf["bip"] == "10.251.2.1/24"
    assert conf["default-address-pools"] == [{"base": "10.251.12.0/22", "size": 24}]
    assert conf["cgroup-parent"] == "/sc1-node2"
    assert conf["containerd-namespace"] == "sc1-node2"
    assert conf["dns"] == ["127.0.0.1"]
    assert set(conf["insecure-registries"]) == {"10.251.0.2:41234", "10.251.0.0/24"}


def test_swarm_commands() -> None:
    spec = cfg.plan_cluster("sc1", 0, (2048, 2048, 1024))
    init = cfg.swarm_init_args(spec)
    assert init[:2] == ["swarm", "init"]
    assert init[init.index("--advertise-addr") + 1] == "10.251.0.11"
    assert init[init.index("--dispatcher-heartbeat") + 1] == "1s"
    assert init[init.index("--default-addr-pool") + 1] == "10.251.128.0/19"
    join = cfg.swarm_join_args(spec, spec.nodes[2], "TOKEN")
    assert join[-1] == "10.251.0.11:2377"
    assert join[join.index("--advertise-addr") + 1] == "10.251.0.13"
    assert join[join.index("--token") + 1] == "TOKEN"


def test_meminfo_gets_the_node_size_and_keeps_the_rest() -> None:
    out = cfg.edit_meminfo(MEMINFO, 2048).splitlines()
    src = MEMINFO.splitlines()
    assert out[0] == "MemTotal:        2097152 kB"
    assert out[1] == "MemFree:         2097152 kB"
    assert out[2] == "MemAvailable:    2097152 kB"
    assert out[3:] == src[3:]
    assert [len(line) for line in out] == [len(line) for line in src]


def test_meminfo_does_not_raise_free_memory() -> None:
    small = MEMINFO.replace("24223456", "     100")
    assert "MemFree:             100 kB" in cfg.edit_meminfo(small, 1024)


def test_meminfo_without_memtotal_is_an_error() -> None:
    with pytest.raises(cfg.ConfigError):
        cfg.edit_meminfo("Buffers: 1 kB\n", 1024)


def test_memory_sizes() -> None:
    assert cfg.default_memory(3) == (2048, 2048, 1024)
    assert cfg.default_memory(1) == (1024,)
    assert cfg.parse_memory("2048,2048,1024") == (2048, 2048, 1024)
    for bad in ("2048,,1024", "two", "2048,10"):
        with pytest.raises(cfg.ConfigError, match="memory-mb"):
            cfg.parse_memory(bad)


@pytest.mark.parametrize(
    ("claimed", "expected"),
    [({}, 0), ({"sc1": 2}, 2), ({"other": 0}, 1), ({"a": 0, "b": 1, "c": 3}, 2)],
)
def test_pick_index(claimed: dict[str, int], expected: int) -> None:
    assert cfg.pick_index("sc1", claimed) == expected


def test_pick_index_when_every_block_is_taken() -> None:
    claimed = {f"c{i}": i for i in range(cfg.MAX_CLUSTERS)}
    with pytest.raises(cfg.ConfigError, match="no free cluster index"):
        cfg.pick_index("sc1", claimed)


def test_network_commands_build_hub_veth_and_nodes_without_default_route() -> None:
    spec = cfg.plan_cluster("sc1", 1, (2048, 1024))
    steps = cfg.network_commands(spec)
    lines = [" ".join(step) for step in steps]
    assert lines[0] == "ip netns add sc1-hub"
    assert "ip addr add 10.251.32.2/24 dev sc1-root" in lines
    assert "ip -n sc1-hub addr add 10.251.32.1/24 dev br0" in lines
    assert "ip -n sc1-node2 addr add 10.251.32.12/24 dev eth0" in lines
    assert not any("route" in line for line in lines)
    assert lines.index("ip netns add sc1-node1") < lines.index(
        "ip -n sc1-hub link add n1 type veth peer name eth0 netns sc1-node1"
    )


def test_dockerd_command_enters_the_netns_with_a_private_mount_namespace() -> None:
    node = cfg.plan_cluster("sc1", 0, (2048,)).nodes[0]
    argv = cfg.dockerd_command(node)
    assert argv[:2] == ["nsenter", "--net=/run/netns/sc1-node1"]
    assert argv[argv.index("unshare") + 1 : argv.index("sh")] == [
        "--mount",
        "--uts",
        "--propagation",
        "slave",
        "--",
    ]
    script = argv[-1]
    assert "mount -t sysfs sysfs /sys" in script
    assert f"mount --bind {node.meminfo_path} /proc/meminfo" in script
    assert script.index("mount --rbind /sys/fs/cgroup") < script.index("mount -t sysfs")
    assert script.endswith(f"exec {node.dockerd_link} --config-file {node.config_path}")
    assert node.dockerd_link.name == "sc-dockerd"  # not `pgrep -x dockerd`


def test_teardown_patterns_stay_within_the_cluster_name() -> None:
    netns = cfg.node_netns_re("sc1")
    assert netns.match("sc1-hub") and netns.match("sc1-node3")
    assert not netns.match("sc10-node1") and not netns.match("sc1-node") and not netns.match("x")
    cgroup = cfg.node_cgroup_re("sc1")
    assert cgroup.match("sc1-node1") and not cgroup.match("sc1-hub")
    assert not cgroup.match("sc10-node1") and not cgroup.match("docker")
