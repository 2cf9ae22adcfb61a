"""Admission by memory reservation: a deploy that does not fit waits, the old one serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import apps
from tests.client import Api, login, make_user, unique
from tests.deploying import definition, get, push, status, url, wait_event, wait_for, wait_text
from tests.stack import Stack


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("small"), {"SERVICECTL_CAPACITY_MB": "100"})
    try:
        s.start()
        yield s
    finally:
        s.stop()
        s.remove_docker_objects()


def test_update_waits_for_memory_and_proceeds_when_it_frees(
    small_stack: Stack, tmp_path: Path
) -> None:
    stack = small_stack
    project = unique("p")
    user, pw = make_user(stack, project)
    api = Api(stack, login(stack, user, pw, project))
    image = apps.build_image(tmp_path / "app")
    for name, greeting in (("a", "a1"), ("b", "b1")):
        api.post("/services", json={"name": name})
        push(api, name, image, "v1", tmp_path / "d")
        api.put(
            f"/services/{name}",
            json=definition("v1", {"GREETING": greeting}, reservation=40, limit=64),
        )
        wait_text(stack, project, name, f"{greeting} from")
    # 80 of 100 MB reserved: revision 2 of `a` needs 30 while revision 1 still runs
    api.put("/services/a", json=definition("v1", {"GREETING": "a2"}, reservation=30, limit=64))
    pending = wait_event(api, "a", "deployment.pending", timeout=30)
    assert (
        "needs 30 MB" in pending["message"]
        and "only 20 MB of 100 MB are free" in pending["message"]
    )
    assert "revision 1 keeps serving" in pending["message"]
    st = status(api, "a")
    assert st["deployment"]["status"] == "PENDING" and st["count_pending"] == 1
    assert get(url(stack, project, "a")).text.startswith("a1 from")
    # free memory: delete b, and a proceeds by itself
    assert api.delete("/services/b").status_code in (200, 202)
    wait_text(stack, project, "a", "a2 from", timeout=60)
    wait_for(lambda: status(api, "a")["deployment"]["status"] == "COMPLETED", 30, "completion")
