"""The test cluster itself: nodes, sizes, placement, images, reachability, link loss, teardown."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.cluster import Cluster
from tests.integration.multihost.conftest import cluster_name, running_cluster

pytestmark = pytest.mark.multihost
ROOT = Path(__file__).resolve().parents[3]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` holds; fails the test after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - started


def inspect(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(cluster.docker(1, *args).stdout)
    return result


def node_state(cluster: Cluster, name: str) -> str:
    return str(inspect(cluster, "node", "inspect", name)[0]["Status"]["State"])


def running_tasks(cluster: Cluster, service: str) -> list[dict[str, Any]]:
    ids = cluster.docker(1, "service", "ps", "-q", "--filter", "desired-state=running", service)
    tasks = inspect(cluster, "inspect", *ids.stdout.split()) if ids.stdout.strip() else []
    return [t for t in tasks if t["Status"]["State"] == "running"]


def node_names(cluster: Cluster, tasks: list[dict[str, Any]]) -> list[str]:
    by_id = {
        n["ID"]: n["Description"]["Hostname"]
        for n in inspect(cluster, "node", "inspect", *(n.name for n in cluster.nodes))
    }
    return sorted(by_id[t["NodeID"]] for t in tasks)


@pytest.fixture
def service(cluster: Cluster) -> Iterator[str]:
    """A service name of the test's own, removed afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    cluster.docker(1, "service", "rm", name, check=False)


def create(cluster: Cluster, name: str, image: str, *options: str) -> None:
    """`docker service create` on the manager, by image ID (no registry holds the image)."""
    flags = ["--detach", "--name", name, "--no-resolve-image", "--stop-signal", "KILL"]
    cluster.docker(1, "service", "create", *flags, *options, image)


def test_three_ready_nodes_and_one_manager(cluster: Cluster) -> None:
    rows = cluster.docker(
        1, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}"
    ).stdout.splitlines()
    seen = {row.split()[0]: row.split()[1:] for row in rows}
    assert set(seen) == {n.name for n in cluster.nodes}
    assert all(status[0] == "Ready" for status in seen.values()), rows
    managers = {name: status[1:] for name, status in seen.items() if status[1:]}
    assert managers == {cluster.manager.name: ["Leader"]}
    assert cluster.manager is cluster.nodes[0]
    assert len(cluster.nodes) == 3


def test_each_node_reports_its_memory_and_address(cluster: Cluster) -> None:
    for node in cluster.nodes:
        info = inspect(cluster, "node", "inspect", node.name)[0]
        assert info["Description"]["Resources"]["MemoryBytes"] == node.memory_mb * 2**20
        assert info["Status"]["Addr"] == node.address
    assert [n.memory_mb for n in cluster.nodes] == [2048, 2048, 1024]


def test_a_reservation_only_the_big_nodes_fit_is_placed_there(
    cluster: Cluster, cluster_app_image: str, service: str
) -> None:
    create(cluster, service, cluster_app_image, "--replicas", "2", "--reserve-memory", "1536M")
    wait_for(lambda: len(running_tasks(cluster, service)) == 2, 30, "2 tasks running")
    big = sorted(n.name for n in cluster.nodes if n.memory_mb >= 2048)
    assert node_names(cluster, running_tasks(cluster, service)) == big

    # a third task fits nowhere: pending with Swarm's reason
    cluster.docker(1, "service", "scale", "--detach", f"{service}=3")

    def pending_reason() -> str:
        ids = cluster.docker(1, "service", "ps", "-q", service).stdout.split()
        return " ".join(t["Status"].get("Err", "") for t in inspect(cluster, "inspect", *ids))

    wait_for(lambda: "insufficient resources" in pending_reason(), 15, "pending task")


def test_a_loaded_image_runs_on_every_node_and_is_reachable(
    cluster: Cluster, cluster_app_image: str, service: str
) -> None:
    create(
        cluster,
        service,
        cluster_app_image,
        "--mode",
        "global",
        "--publish",
        "mode=host,target=8080",
    )
    wait_for(lambda: len(running_tasks(cluster, service)) == 3, 30, "a task on every node")
    tasks = running_tasks(cluster, service)
    assert node_names(cluster, tasks) == sorted(n.name for n in cluster.nodes)
    addresses = {
        n["ID"]: n["Status"]["Addr"]
        for n in inspect(cluster, "node", "inspect", *(n.name for n in cluster.nodes))
    }
    for task in tasks:
        port = task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"]
        url = f"http://{addresses[task['NodeID']]}:{port}/"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert b"hello" in r.read()


def test_every_node_reaches_the_root_namespace(cluster: Cluster, cluster_app_image: str) -> None:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hub says hi\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((cluster.hub_address, 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{cluster.hub_address}:{server.server_address[1]}/"
        for node in cluster.nodes:
            out = cluster.docker(
                node.index, "run", "--rm", cluster_app_image, "wget", "-q", "-O", "-", url
            )
            assert out.stdout == "hub says hi\n", node.name
    finally:
        server.shutdown()
        server.server_close()


def test_a_node_whose_link_is_down_is_seen_down_then_ready_again(cluster: Cluster) -> None:
    lost = cluster.nodes[-1]
    cluster.link_down(lost.index)
    try:
        took = wait_for(lambda: node_state(cluster, lost.name) == "down", 15, "node Down")
    finally:
        cluster.link_up(lost.index)
    back = wait_for(lambda: node_state(cluster, lost.name) == "ready", 30, "node Ready again")
    print(f"link down: Down after {took:.1f} s; Ready {back:.1f} s after link up")


def test_a_killed_dockerd_is_down_and_rejoins_when_started(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    cluster.kill_dockerd(node.index)
    try:
        wait_for(lambda: node_state(cluster, node.name) == "down", 15, "node Down")
    finally:
        cluster.start_dockerd(node.index)
    wait_for(lambda: node_state(cluster, node.name) == "ready", 30, "node Ready again")


def test_a_second_cluster_coexists_and_leaves_nothing_behind(cluster: Cluster) -> None:
    with running_cluster(cluster_name("b"), (512, 512)) as other:
        assert other.spec.index != cluster.spec.index
        assert other.hub_address != cluster.hub_address
        assert other.is_ready() and cluster.is_ready()
        info = json.loads(other.docker(1, "node", "inspect", other.nodes[1].name).stdout)[0]
        assert info["Description"]["Resources"]["MemoryBytes"] == 512 * 2**20
    assert other.leftovers() == []  # running_cluster checked too; a second down is harmless:
    other.down()
    assert other.leftovers() == []
    assert cluster.is_ready()


def test_down_cleans_up_after_an_interrupted_up(cluster: Cluster) -> None:
    name = cluster_name("i")
    half = Cluster(name, memory_mb=(512, 512))
    cli = [sys.executable, "-m", "deploy.cluster", "up", "--name", name, "--memory-mb", "512,512"]
    proc = subprocess.Popen(cli, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: half.nodes[0].socket_path.exists() or proc.poll() is not None,
            30,
            "the first dockerd of the interrupted cluster",
        )
        proc.kill()  # SIGKILL: the CLI cleans nothing up, its dockerds run on
        proc.wait()
        assert half.leftovers(), "the interrupted up left nothing to clean: test is void"
    finally:
        half.down()
    assert half.leftovers() == []
    assert cluster.is_ready()
