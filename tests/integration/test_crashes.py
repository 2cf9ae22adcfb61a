"""Crashed and OOM-killed tasks: reported with exit code and last lines, restarted with backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import apps
from tests.client import Api
from tests.deploying import definition, push, status, wait_event, wait_for, wait_text
from tests.stack import Stack


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


def test_crash_is_reported_and_restarted_with_backoff(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    api.post("/services", json={"name": "crashy"})
    push(api, "crashy", app_image, "v1", tmp_path / "d")
    api.put("/services/crashy", json=definition("v1", {"MODE": "crash-later", "CRASH_AFTER": "2"}))
    wait_text(stack, project, "crashy", "hello from")
    exited = wait_event(api, "crashy", "task.exited", timeout=30)
    assert "exited with code 1" in exited["message"]
    assert "crashing now" in exited["message"]
    restarting = wait_event(api, "crashy", "task.restarting", timeout=10)
    assert "restarting revision 1 in 1 s" in restarting["message"]

    def third_restart() -> list[str] | None:
        st = status(api, "crashy")
        messages = [e["message"] for e in st["events"] if e["type"] == "task.restarting"]
        return messages if any(" in 4 s " in m for m in messages) else None

    messages = wait_for(third_restart, 60, "a third restart, 4 s after the crash")
    assert any(" in 2 s " in m for m in messages), messages  # 1 s, 2 s, 4 s ...
    assert int(status(api, "crashy")["restarts"]) >= 3
    # between crashes it serves again
    wait_text(stack, project, "crashy", "hello from", timeout=30)


def test_oom_kill_is_reported_with_the_limit(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    api.post("/services", json={"name": "hungry"})
    push(api, "hungry", app_image, "v1", tmp_path / "d")
    api.put(
        "/services/hungry",
        json=definition("v1", {"MODE": "oom", "OOM_AFTER": "2"}, reservation=16, limit=32),
    )
    wait_text(stack, project, "hungry", "hello from")
    oom = wait_event(api, "hungry", "task.oom_killed", timeout=30)
    assert "more than its memory limit (32 MB)" in oom["message"]
    assert "allocating 400 MB now" in oom["message"]


def test_first_deploy_oom_fails_the_deployment(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    api.post("/services", json={"name": "greedy"})
    push(api, "greedy", app_image, "v1", tmp_path / "d")
    api.put("/services/greedy", json=definition("v1", {"MODE": "oom"}, reservation=16, limit=32))
    failed = wait_event(api, "greedy", "deployment.failed", timeout=30)
    assert "memory limit (32 MB)" in failed["message"]
    assert "no earlier revision to serve" in failed["message"]
