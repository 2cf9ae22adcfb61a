"""Deploying: update -> serving through the gateway, zero-downtime replace, rollback.

Everything is real: the registry with our token auth, dockerd, NATS, HAProxy, and
(for the main lifecycle) the clfpy client.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest
from clfpy import ServicesClient

from tests import apps
from tests.client import Api
from tests.deploying import (
    Hammer,
    containers,
    definition,
    event_types,
    get,
    push,
    status,
    url,
    wait_event,
    wait_for,
    wait_text,
)
from tests.stack import Stack


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


def test_clfpy_update_replace_delete(
    stack: Stack,
    api: Api,
    project: str,
    app_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    token = api.token
    assert token
    srv = ServicesClient(stack.api_base)
    srv.create_new_service(token, "web")
    creds = srv.get_docker_credentials(token, "web")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        srv.build_and_push_docker_image(
            token, "web", str(apps.build_context(tmp_path / "ctx")), creds, tag="v1"
        )
    assert "Something went wrong" not in out.getvalue(), out.getvalue()

    answer = srv.update_service(token, "web", definition("v1", {"GREETING": "hello"}))
    assert answer["revision"] == 1
    wait_text(stack, project, "web", f"hello from /{project}-web")

    with Hammer(url(stack, project, "web")) as hammer:
        time.sleep(0.5)
        answer = srv.update_service(token, "web", definition("v1", {"GREETING": "bonjour"}))
        assert answer["revision"] == 2
        wait_text(stack, project, "web", f"bonjour from /{project}-web")
        wait_event(api, "web", "deployment.completed")
        time.sleep(0.5)
    assert hammer.failures == []
    assert hammer.ok > 20
    assert hammer.bodies == {f"hello from /{project}-web", f"bonjour from /{project}-web"}

    def settled() -> dict[str, object] | None:
        st = status(api, "web")
        running = [t for t in st["tasks"] if t["last_status"] == "RUNNING"]
        if len(running) == 1 and running[0]["task_definition"]["revision"] == 2:
            return st
        return None

    st = wait_for(settled, 30, "only revision 2 running")
    assert st["service_status"] == "ACTIVE"
    assert (st["count_desired"], st["count_running"], st["count_pending"]) == (1, 1, 0)
    task = next(t for t in st["tasks"] if t["last_status"] == "RUNNING")
    td = task["task_definition"]
    assert (
        td["revision"],
        td["container_memory_reservation"],
        td["container_memory_limit"],
        td["container_port"],
    ) == (2, 16, 64, 8080)
    assert td["container_image"] == f"{stack.registry}/{project}/web:v1"
    targets = st["target_health"]["targets"]
    assert len(targets) == 1 and targets[0]["health"] == "healthy"
    types = event_types(api, "web")
    for expected in (
        "deployment.started",
        "task.started",
        "task.healthy" if False else "target.registered",
        "target.deregistered",
        "task.stopped",
        "deployment.completed",
        "service.updated",
    ):
        assert expected in types, (expected, types)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        srv.print_service_status(token, "web")
    assert "Revision: 2" in printed.getvalue() and "Health: healthy" in printed.getvalue()

    deleted = srv.delete_service(token, "web")
    assert deleted["status"] == "DELETED"
    assert get(url(stack, project, "web")).status_code == 404
    assert containers(stack, project, "web") == []
    srv2 = api.post("/services", json={"name": "web"})
    assert srv2.status_code == 201
    assert api.get("/services/web", params={"view": "docker"}).status_code == 200


@pytest.fixture
def serving(stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path) -> str:
    """A service `svc` serving revision 1 ("v1 from ...")."""
    api.post("/services", json={"name": "svc"})
    push(api, "svc", app_image, "v1", tmp_path / "docker")
    assert api.put("/services/svc", json=definition("v1", {"GREETING": "v1"})).status_code == 200
    wait_text(stack, project, "svc", "v1 from")
    wait_event(api, "svc", "deployment.completed")
    return "svc"


def _fails_and_keeps_serving(
    stack: Stack, api: Api, project: str, body: dict[str, object], reason: str
) -> dict[str, object]:
    with Hammer(url(stack, project, "svc")) as hammer:
        r = api.put("/services/svc", json=body)
        assert r.status_code == 200 and r.json()["revision"] == 2
        failed = wait_event(api, "svc", "deployment.failed", timeout=40)
    assert reason in failed["message"], failed["message"]
    assert "rolled back: revision 1 keeps serving" in failed["message"]
    assert hammer.failures == [] and hammer.ok > 0
    assert get(url(stack, project, "svc")).text.startswith("v1 from")
    st = status(api, "svc")
    assert st["deployment"]["revision"] == 2 and st["deployment"]["status"] == "FAILED"
    assert reason in st["deployment"]["reason"]
    assert st["serving_revision"] == 1

    def only_v1() -> bool:
        running = [t for t in status(api, "svc")["tasks"] if t["last_status"] == "RUNNING"]
        return [t["task_definition"]["revision"] for t in running] == [1]

    wait_for(only_v1, 20, "the failed task to be removed")
    return failed


def test_missing_tag_fails_and_keeps_old(
    stack: Stack, api: Api, project: str, serving: str
) -> None:
    _fails_and_keeps_serving(
        stack, api, project, definition("no-such-tag"), "is not in the registry"
    )


def test_crashing_task_fails_and_keeps_old(
    stack: Stack, api: Api, project: str, serving: str
) -> None:
    failed = _fails_and_keeps_serving(
        stack,
        api,
        project,
        definition("v1", {"MODE": "crash", "EXIT_CODE": "3"}),
        "exited with code 3 before becoming healthy",
    )
    assert "fatal: cannot connect to the database" in failed["message"]


def test_never_healthy_fails_at_deadline(
    stack: Stack, api: Api, project: str, serving: str
) -> None:
    _fails_and_keeps_serving(
        stack,
        api,
        project,
        definition("v1", {"MODE": "never-ready"}),
        "did not become healthy within 8 s",
    )


def test_unhealthy_status_codes_fail(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    hc = {"rel_path": "/missing", "status_codes": "200-299", "interval": 5}
    api.post("/services", json={"name": "hc", "health_check": hc})
    push(api, "hc", app_image, "v1", tmp_path / "d")
    api.put("/services/hc", json=definition("v1"))
    failed = wait_event(api, "hc", "deployment.failed", timeout=40)
    assert "returned 404, expected 200-299" in failed["message"]
    assert "no earlier revision to serve" in failed["message"]
    st = status(api, "hc")
    assert st["deployment"]["status"] == "FAILED" and st["serving_revision"] == 0
    r = get(url(stack, project, "hc"))
    assert r.status_code in (404, 503)
    assert r.json()["Error"]


def test_custom_health_check_path(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    hc = {"rel_path": "/health/", "status_codes": "200", "interval": 5}
    api.post("/services", json={"name": "hp", "health_check": hc})
    push(api, "hp", app_image, "v1", tmp_path / "d")
    api.put("/services/hp", json=definition("v1", {"GREETING": "custom"}))
    wait_text(stack, project, "hp", "custom from")
    targets = status(api, "hp")["target_health"]
    assert targets["health_check_path"] == f"/{project}-hp/health/"
    assert targets["targets"][0]["health"] == "healthy"
    assert f"GET /{project}-hp/health/ returned 200" in targets["targets"][0]["description"]


def test_context_root_override_warns(stack: Stack, api: Api, project: str, serving: str) -> None:
    r = api.put("/services/svc", json=definition("v1", {"CONTEXT_ROOT": "/elsewhere"}))
    assert r.status_code == 200
    assert "requests will not reach it" in r.json()["warnings"][0]
    assert "service.warning" in event_types(api, "svc")


def test_revisions_and_rollback(stack: Stack, api: Api, project: str, serving: str) -> None:
    api.put("/services/svc", json=definition("v1", {"GREETING": "v2"}))
    wait_text(stack, project, "svc", "v2 from")
    revs = api.get("/services/svc/revisions").json()
    assert [r["revision"] for r in revs["revisions"]] == [1, 2]
    assert {"name": "GREETING", "value": "v1"} in revs["revisions"][0]["environment"]
    r = api.post("/services/svc/rollback", json={})
    assert r.status_code == 200 and r.json()["revision"] == 3
    assert r.json()["task_definition"]["rolled_back_from"] == 1
    wait_text(stack, project, "svc", "v1 from")
    r = api.post("/services/svc/rollback", json={"revision": 2})
    assert r.json()["revision"] == 4
    wait_text(stack, project, "svc", "v2 from")
    bad = api.post("/services/svc/rollback", json={"revision": 9})
    assert bad.status_code == 400 and "between 1 and 4" in bad.json()["Error"]


def test_update_validation(api: Api, serving: str) -> None:
    cases = [
        ({**definition(), "memory-limit": 8, "memory-reservation": 16}, "greater than or equal"),
        ({**definition(), "container-port": 0}, "between 1 and 65535"),
        ({**definition(), "container-port": 65536}, "between 1 and 65535"),
        ({**definition(), "container-tag": "bad tag"}, "container-tag"),
        ({**definition(), "extra": 1}, "unknown field `extra`"),
        ({k: v for k, v in definition().items() if k != "environment"}, "`environment`"),
        ({**definition(), "memory-limit": "64"}, "Expected `int`, got `str`"),
        ({**definition(), "environment": [{"name": "A"}]}, "missing required field `value`"),
    ]
    for body, message in cases:
        r = api.put("/services/svc", json=body)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["Error"], (body, r.text)
    assert status(api, "svc")["revision"] == 1


def test_unhealthy_task_is_shown_and_replaced(
    stack: Stack, api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    hc = {"rel_path": "/health/", "status_codes": "200", "interval": 5}
    api.post("/services", json={"name": "sick", "health_check": hc})
    push(api, "sick", app_image, "v1", tmp_path / "d")
    api.put("/services/sick", json=definition("v1", {"MODE": "sick-later", "SICK_AFTER": "2"}))
    wait_text(stack, project, "sick", "hello from")
    first = status(api, "sick")["tasks"][0]["task_name"]
    unhealthy = wait_event(api, "sick", "task.unhealthy", timeout=40)
    assert first in unhealthy["message"]
    assert "returned 404, expected 200" in unhealthy["message"]

    def shown() -> dict[str, object] | None:
        for t in status(api, "sick")["target_health"]["targets"]:
            if t["target"] == first and t["health"] == "unhealthy":
                return t  # type: ignore[no-any-return]
        return None

    target = wait_for(shown, 20, "the unhealthy target in target_health")
    assert "returned 404" in str(target["description"])

    def replaced() -> bool:
        names = [t["task_name"] for t in status(api, "sick")["tasks"]]
        return any(n != first for n in names)

    wait_for(replaced, 20, "a replacement task")


def test_gateway_and_haproxy_restarts_keep_routes(
    stack: Stack, api: Api, project: str, serving: str
) -> None:
    stack.procs["gateway"].kill()
    assert get(url(stack, project, "svc")).status_code == 200  # the data plane does not need it
    stack.procs["haproxy"].kill()
    stack.procs["haproxy"].start()  # starts with the routes the gateway last wrote
    wait_text(stack, project, "svc", "v1 from", timeout=15)
    stack.procs["gateway"].start()
    # routes still follow NATS: a new revision is served
    api.put("/services/svc", json=definition("v1", {"GREETING": "after-restarts"}))
    wait_text(stack, project, "svc", "after-restarts from", timeout=30)
    stack.procs["haproxy"].kill()
    stack.procs["haproxy"].start()
    wait_text(stack, project, "svc", "after-restarts from", timeout=15)


def test_no_failed_request_while_this_and_other_services_change(
    stack: Stack, api: Api, project: str, serving: str, app_image: str, tmp_path: Path
) -> None:
    """Keep-alive clients of one service see no error while it is replaced twice and
    other services are deployed and deleted around it (HAProxy is never reloaded)."""
    api.post("/services", json={"name": "other"})
    push(api, "other", app_image, "v1", tmp_path / "d")
    hammers = [Hammer(url(stack, project, "svc")) for _ in range(4)]
    for h in hammers:
        h.__enter__()
    try:
        time.sleep(0.3)
        api.put("/services/other", json=definition("v1", {"GREETING": "other"}))
        api.put("/services/svc", json=definition("v1", {"GREETING": "v2"}))
        wait_text(stack, project, "other", "other from")
        wait_text(stack, project, "svc", "v2 from")
        assert api.delete("/services/other").status_code == 200
        api.put("/services/svc", json=definition("v1", {"GREETING": "v3"}))
        wait_text(stack, project, "svc", "v3 from")
        time.sleep(0.5)
    finally:
        for h in hammers:
            h.__exit__()
    failures = [f for h in hammers for f in h.failures]
    assert failures == [], failures[:5]
    assert sum(h.ok for h in hammers) > 100
    assert get(url(stack, project, "other")).status_code == 404
