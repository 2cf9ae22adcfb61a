"""Exits are noticed at once: from Docker's die event, not the periodic resync.

Regression: a task dying within milliseconds of its start was reported 2-10 s
later (Docker's container list still says "running" just after its die event),
and the gateway sent requests to a dead task meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from shared import names
from shared.clock import parse_iso
from tests import apps
from tests.client import Api
from tests.deploying import definition, push, wait_event, wait_text
from tests.stack import Stack

NOTICED_WITHIN_S = 1.0  # the stack's resync runs every 2 s: a later report came from it


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


def died_at(stack: Stack, project: str, service: str, since: float) -> float:
    """When Docker says the service's container died (its event log: the container may be gone)."""
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{time.time():.3f}",
            "--filter",
            "event=die",
            "--filter",
            f"label={names.LABEL_INSTANCE}={stack.instance}",
            "--filter",
            f"label={names.LABEL_PROJECT}={project}",
            "--filter",
            f"label={names.LABEL_SERVICE}={service}",
            "--format",
            "{{json .}}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    deaths = [json.loads(line)["timeNano"] / 1e9 for line in out.stdout.splitlines()]
    assert deaths, f"no die event of {service}"
    return float(deaths[0])


def test_a_task_that_dies_at_once_fails_its_deploy_within_a_second(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    since = time.time()
    api.post("/services", json={"name": "quick"})
    push(api, "quick", app_image, "v1", tmp_path / "d")
    api.put("/services/quick", json=definition("v1", {"MODE": "crash"}))
    failed = wait_event(api, "quick", "deployment.failed", timeout=30)
    exited = wait_event(api, "quick", "task.exited", timeout=5)
    died = died_at(stack, project, "quick", since)
    assert parse_iso(failed["created_at"]) - died < NOTICED_WITHIN_S, (failed, died)
    assert "exited with code 3" in exited["message"]


def test_a_serving_task_that_crashes_leaves_the_route_within_a_second(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    since = time.time()
    api.post("/services", json={"name": "later"})
    push(api, "later", app_image, "v1", tmp_path / "d")
    env = {"MODE": "crash-later", "CRASH_AFTER": "3"}
    api.put("/services/later", json=definition("v1", env))
    wait_text(stack, project, "later", "hello from")
    gone = wait_event(api, "later", "target.deregistered", timeout=30)
    exited = wait_event(api, "later", "task.exited", timeout=5)
    died = died_at(stack, project, "later", since)
    assert parse_iso(gone["created_at"]) - died < NOTICED_WITHIN_S, (gone, died)
    assert parse_iso(exited["created_at"]) - died < NOTICED_WITHIN_S, (exited, died)
