"""The hosts that run tasks: seen by operators, and bounding what a definition may reserve."""

from __future__ import annotations

import subprocess
import sys

from tests.client import Api
from tests.deploying import definition, wait_for
from tests.stack import Stack


def nodes_table(stack: Stack) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "services.api.admin", "nodes"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_one_engine_is_one_node_with_the_configured_capacity(stack: Stack) -> None:
    def ready() -> str | None:
        table = nodes_table(stack)
        return table if "ready" in table else None

    table = wait_for(ready, 30, "the deployer's nodes")
    header, row = table.strip().splitlines()
    assert header.split()[:3] == ["NODE", "ADDRESS", "STATE"]
    assert row.split()[1:4] == ["127.0.0.1", "ready", "active"]
    assert row.split()[4] == str(stack.settings.capacity_mb)


def test_a_reservation_no_host_can_give_is_refused_naming_the_largest(
    stack: Stack, api: Api
) -> None:
    wait_for(lambda: "ready" in nodes_table(stack), 30, "the deployer's nodes")
    api.post("/services", json={"name": "huge"})
    capacity = stack.settings.capacity_mb
    body = definition("v1", reservation=capacity + 1, limit=capacity + 1)
    r = api.put("/services/huge", json=body)
    assert r.status_code == 400, r.text
    message = r.json()["Error"]
    assert f"no host has more than {capacity} MB to reserve" in message
    assert f"ask for at most {capacity}" in message
    ok = api.put("/services/huge", json=definition("v1", reservation=16, limit=32))
    assert ok.status_code == 200
