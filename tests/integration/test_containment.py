"""Tasks are contained: per-project networks, no way into the host, limits on processes.

Probes run inside the tasks (`docker exec ... nc`) and only ever target
addresses of the platform's own project networks (10.213.0.0/16 here).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import names
from tests import apps
from tests.client import Api
from tests.deploying import containers, definition, push, wait_for, wait_text
from tests.stack import Stack


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


def deploy(api: Api, stack: Stack, project: str, name: str, image: str, tmp: Path) -> str:
    assert api.post("/services", json={"name": name}).status_code == 201
    push(api, name, image, "v1", tmp / name)
    assert (
        api.put(f"/services/{name}", json=definition("v1", {"GREETING": name})).status_code == 200
    )
    wait_text(stack, project, name, f"{name} from")
    (cid,) = [c for c in containers(stack, project, name) if running(c)]
    return cid


def running(cid: str) -> bool:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", cid], capture_output=True, text=True
    )
    return out.stdout.strip() == "true"


def inspect(cid: str) -> dict[str, object]:
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(out.stdout)[0]
    return found


def address(cid: str) -> tuple[str, str]:
    """(network name, IP) of a task."""
    nets = inspect(cid)["NetworkSettings"]["Networks"]  # type: ignore[index]
    ((name, net),) = nets.items()  # type: ignore[union-attr]
    return str(name), str(net["IPAddress"])


def gateway_ip(cid: str) -> str:
    """The host's address on the task's network."""
    nets = inspect(cid)["NetworkSettings"]["Networks"]  # type: ignore[index]
    ((_, net),) = nets.items()  # type: ignore[union-attr]
    return str(net["Gateway"])


def reaches(cid: str, ip: str, port: int) -> bool:
    # busybox's nc has no -z: send a newline; it exits 0 once connected and answered or closed
    r = subprocess.run(
        ["docker", "exec", cid, "sh", "-c", f"echo | nc -w 2 {ip} {port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return r.returncode == 0


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP port the test listens on, on every host address (as a careless host service)."""
    srv = socket.create_server(("0.0.0.0", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        stop.set()
        t.join(timeout=2)
        srv.close()


def test_projects_are_isolated_and_tasks_cannot_reach_the_host(
    stack: Stack,
    api: Api,
    other_api: Api,
    project: str,
    app_image: str,
    tmp_path: Path,
    host_listener: int,
) -> None:
    other = other_api.get("/auth/tokens/current").json()["project"]
    a1 = deploy(api, stack, project, "one", app_image, tmp_path)
    a2 = deploy(api, stack, project, "two", app_image, tmp_path)
    b1 = deploy(other_api, stack, other, "three", app_image, tmp_path)
    net_a, ip_a2 = address(a2)
    net_b, ip_b1 = address(b1)
    assert address(a1)[0] == net_a == names.project_network(stack.instance, project)
    assert net_b == names.project_network(stack.instance, other) != net_a
    for ip in (ip_a2, ip_b1):
        assert ip.startswith("10.213."), ip  # the platform's own pool

    assert reaches(a1, ip_a2, 8080), "tasks of one project reach each other"
    assert not reaches(a1, ip_b1, 8080), "another project's task must be out of reach"
    assert not reaches(b1, ip_a2, 8080)
    # the host: neither a port it listens on everywhere nor the platform's own ports
    host = gateway_ip(a1)
    assert host.startswith("10.213."), host
    probes = [host_listener, *stack.ports.values()]
    assert not [p for p in probes if reaches(a1, host, p)]

    # the project's network goes with its last service
    assert api.delete("/services/one").status_code in (200, 202)
    assert api.delete("/services/two").status_code in (200, 202)

    def network_gone() -> bool:
        r = subprocess.run(["docker", "network", "inspect", net_a], capture_output=True)
        return r.returncode != 0

    wait_for(network_gone, 30, f"network {net_a} to be removed")
    r = subprocess.run(["docker", "network", "inspect", net_b], capture_output=True)
    assert r.returncode == 0, "the other project's network stays"


def test_a_fork_bomb_is_contained(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    bomb = deploy(api, stack, project, "bomb", app_image, tmp_path)
    calm = deploy(api, stack, project, "calm", app_image, tmp_path)
    host = inspect(bomb)["HostConfig"]
    assert host["PidsLimit"] == stack.settings.task_pids_limit  # type: ignore[index]
    assert host["CapDrop"] == ["ALL"]  # type: ignore[index]
    assert "NET_RAW" not in (host["CapAdd"] or [])  # type: ignore[index,operator]
    assert "no-new-privileges" in host["SecurityOpt"]  # type: ignore[index,operator]
    r = subprocess.run(
        [
            "docker",
            "exec",
            bomb,
            "timeout",
            "5",
            "sh",
            "-c",
            "bomb() { bomb | bomb & }; bomb; sleep 5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "can't fork" in r.stderr or "Resource temporarily unavailable" in r.stderr, r.stderr
    try:
        # the host and other tasks serve on
        wait_text(stack, project, "calm", "calm from", timeout=10)
        assert subprocess.run(["true"]).returncode == 0
        assert running(calm)
    finally:
        # the bomb's processes spin (failing to fork) until their task stops
        assert api.delete("/services/bomb").status_code in (200, 202)
