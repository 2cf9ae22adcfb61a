"""What `ls`, `status`, `env`, `health` and `scale` show, as text and as `--json`. No servers.

The shapes checked here are the ones docs/CLI.md documents.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from servicectl import health, jsonout, render
from servicectl.definitions import choose_base, user_environment
from servicectl.envfile import parse_env_file
from servicectl.models import (
    EnvVar,
    Event,
    Link,
    Revision,
    Revisions,
    ServiceSummary,
    ServiceView,
    Status,
    TargetHealth,
    UpdateResult,
)
from servicectl.scale import ScaleWatch


def view(name: str, **status: Any) -> ServiceView:
    return msgspec.convert(
        {
            "name": name,
            "links": [
                {"href": f"/services/{name}", "rel": "self"},
                {"href": f"http://gw/p-{name}", "rel": "deployment"},
            ],
            "status": status,
        },
        ServiceView,
    )


OOPS = view(
    "oops",
    service_status="ACTIVE",
    revision=13,
    serving_revision=11,
    count_desired=1,
    count_running=1,
    deployment={"revision": 13, "status": "FAILED", "reason": "task 13-ab was OOM-killed"},
)
FIRST = view(
    "first",
    service_status="ACTIVE",
    revision=1,
    serving_revision=0,
    count_desired=1,
    deployment={
        "revision": 1,
        "status": "FAILED",
        "reason": "image r/p/first:v1 is not in the registry (manifest unknown); push it "
        "first with the credentials from view=docker",
    },
)
HELLO = view(
    "hello",
    service_status="ACTIVE",
    revision=3,
    serving_revision=3,
    count_desired=1,
    count_running=1,
    deployment={"revision": 3, "status": "COMPLETED"},
)
FRESH = view("fresh", service_status="INACTIVE")


def summary(v: ServiceView) -> ServiceSummary:
    return ServiceSummary(name=v.name, links=v.links)


ALL = [HELLO, OOPS, FIRST, FRESH]


def test_ls_table_shows_failures_and_services_nothing_serves() -> None:
    text = render.services_table([summary(v) for v in ALL], {v.name: v for v in ALL})
    lines = text.splitlines()
    assert lines[0].split() == [
        "NAME", "STATUS", "REVISION", "SERVING", "DEPLOY", "RUNNING", "URL",
    ]  # fmt: skip
    assert lines[1].split() == [
        "hello",
        "ACTIVE",
        "3",
        "3",
        "COMPLETED",
        "1/1",
        "http://gw/p-hello",
    ]
    assert lines[2].split() == ["oops", "ACTIVE", "13", "11", "FAILED", "1/1", "http://gw/p-oops"]
    assert lines[3].split() == [
        "first", "NOT", "SERVING", "1", "-", "FAILED", "0/1", "http://gw/p-first",
    ]  # fmt: skip
    assert lines[4].split() == ["fresh", "INACTIVE", "-", "-", "-", "0/0", "http://gw/p-fresh"]
    notes = text.split("\n\n", 1)[1].splitlines()
    assert notes == [
        "oops: revision 13 failed: task 13-ab was OOM-killed; revision 11 serves",
        "first: revision 1 failed: image r/p/first:v1 is not in the registry (manifest "
        "unknown); push it first: servicectl push first DIR --tag v1; nothing serves",
    ]


def test_ls_json() -> None:
    entries = [jsonout.service_entry(summary(v), v) for v in (OOPS, FIRST)]
    entries.append(jsonout.service_entry(ServiceSummary(name="gone"), None))
    decoded = json.loads(jsonout.document(entries))
    oops, first, gone = decoded
    assert oops == {
        "name": "oops",
        "url": "http://gw/p-oops",
        "status": "ACTIVE",
        "serving": True,
        "revision": 13,
        "serving_revision": 11,
        "deployment": {"revision": 13, "status": "FAILED", "reason": "task 13-ab was OOM-killed"},
        "count_running": 1,
        "count_desired": 1,
        "links": [
            {"href": "/services/oops", "rel": "self"},
            {"href": "http://gw/p-oops", "rel": "deployment"},
        ],
    }
    assert (first["serving"], first["serving_revision"], first["deployment"]["status"]) == (
        False,
        0,
        "FAILED",
    )
    assert gone["status"] == "DELETED" and gone["deployment"] is None


def test_status_report_of_a_failed_newest_and_of_nothing_serving() -> None:
    text = render.status_report(OOPS)
    assert "Service   oops (ACTIVE)" in text
    assert "Revision  13 (serving: 11)" in text
    assert "Deploy    revision 13 FAILED: task 13-ab was OOM-killed" in text
    assert "revision 11 keeps serving" in text
    text = render.status_report(FIRST)
    assert "Service   first (NOT SERVING)" in text
    assert "Revision  1 (serving: none)" in text
    assert "view=docker" not in text and "servicectl push first DIR --tag v1" in text
    assert "Serving   nothing" in text
    pending = view("p", service_status="ACTIVE", revision=4, serving_revision=3,
                   deployment={"revision": 3, "status": "COMPLETED"})  # fmt: skip
    assert "Deploy    revision 4 PENDING (waiting for the deployer)" in render.status_report(
        pending
    )
    assert "servicectl push fresh DIR --tag T" in render.status_report(FRESH)


# ---------------------------------------------------------------- env
ENV = [
    EnvVar(name="GREETING", value="hi"),
    EnvVar(name="EMPTY", value=""),
    EnvVar(name="ONE", value="x"),
    EnvVar(name="SPACED", value="  padded  "),
    EnvVar(name="QUOTED", value="'a\""),
    EnvVar(name="HASH", value="1 # not a comment"),
]


def test_env_values_are_masked_unless_shown() -> None:
    assert render.env_lines(ENV[:3], show=False) == [
        "GREETING=*** (2 characters)",
        "EMPTY=(empty)",
        "ONE=*** (1 character)",
    ]


def test_shown_env_reads_back_as_an_env_file() -> None:
    text = "\n".join(render.env_lines(ENV, show=True))
    assert parse_env_file(text) == [(e.name, e.value) for e in ENV]


def test_env_json_and_the_injected_variables() -> None:
    revs = Revisions(
        name="web",
        revision=2,
        revisions=[
            Revision(
                revision=2,
                container_port=8080,
                environment=[
                    EnvVar(name="A", value="secret"),
                    EnvVar(name="CONTEXT_ROOT", value="/p-web"),
                    EnvVar(name="PORT", value="8080"),
                ],
            )
        ],
    )
    web = view("web", service_status="ACTIVE", revision=2, serving_revision=2)
    base = choose_base(revs, web.status)
    assert web.context_root == "/p-web"
    assert base.revision is not None
    env = user_environment(base.revision, web.context_root)
    assert jsonout.env_record("web", base.revision, env, False, base.serving) == {
        "name": "web",
        "revision": 2,
        "serving": True,
        "environment": [{"name": "A", "masked": True, "length": 6}],
    }
    shown = jsonout.env_record("web", base.revision, env, True, True)["environment"]
    assert shown == [{"name": "A", "value": "secret"}]


def test_context_root_is_the_last_part_of_the_url() -> None:
    prefixed = ServiceSummary(
        name="web", links=[Link(href="https://x.org/apps/p-web", rel="deployment")]
    )
    assert prefixed.context_root == "/p-web"
    assert ServiceSummary(name="web").context_root == ""


# ---------------------------------------------------------------- health
@pytest.mark.parametrize(
    ("path", "rel"),
    [("/p-web", "/"), ("/p-web/", "/"), ("/p-web/healthz", "/healthz"), ("/p-webx/a", "/p-webx/a")],
)
def test_health_rel_path(path: str, rel: str) -> None:
    assert health.rel_path(path, "/p-web") == rel


def test_health_merges_only_what_is_given() -> None:
    th = TargetHealth(health_check_path="/p-web/healthz", interval=10, status_codes="200-499")
    now = health.current(th, "/p-web")
    assert health.patch_body(health.merged(now, None, "200-399", None)) == {
        "health_check": {"rel_path": "/healthz", "status_codes": "200-399", "interval": 10}
    }
    assert health.patch_body(health.merged(now, "/ready", None, 30)) == {
        "health_check": {"rel_path": "/ready", "status_codes": "200-499", "interval": 30}
    }
    assert health.describe(th) == "GET /p-web/healthz every 10 s, healthy on 200-499"
    assert jsonout.health_record("web", th, "/healthz") == {
        "name": "web",
        "health_check": {
            "path": "/p-web/healthz",
            "rel_path": "/healthz",
            "status_codes": "200-499",
            "interval": 10,
        },
    }


# ---------------------------------------------------------------- scale
def task(name: str, state: str, health_: str = "") -> dict[str, Any]:
    return {"task_name": name, "last_status": state, "health": health_,
            "task_definition": {"revision": 4}}  # fmt: skip


def st(running: int, *tasks: dict[str, Any]) -> Status:
    return msgspec.convert({"count_running": running, "tasks": list(tasks)}, Status)


def test_scale_watch_reports_new_and_changed_tasks_until_the_count_runs() -> None:
    before = st(1, task("4-a", "RUNNING", "healthy"))
    w = ScaleWatch(2, seen=before.tasks)
    one = st(1, task("4-a", "RUNNING", "healthy"), task("4-b", "PROVISIONING"))
    assert [t.task_name for t in w.changed(one)] == ["4-b"]
    assert not w.done(one) and w.phase(one) == "1 of 2 running, 0 pending"
    assert w.changed(one) == []
    two = st(2, task("4-a", "RUNNING", "healthy"), task("4-b", "RUNNING", "healthy"))
    changed = w.changed(two)
    assert [render.task_line(t) for t in changed] == ["task 4-b (revision 4) RUNNING, healthy"]
    assert w.done(two)
    assert ScaleWatch(0).done(st(0))


# ---------------------------------------------------------------- deploy progress as JSON lines
def test_deploy_json_lines() -> None:
    result = msgspec.convert(
        {
            "name": "web",
            "links": [{"href": "http://gw/p-web", "rel": "deployment"}],
            "revision": 14,
            "task_definition": {"revision": 14, "container_tag": "v1",
                                "container_image": "r/p/web:v1", "container_port": 8080,
                                "container_memory_reservation": 32,
                                "container_memory_limit": 64},
            "warnings": [],
        },
        UpdateResult,
    )  # fmt: skip
    revs = Revisions(
        name="web", revision=13, revisions=[Revision(revision=11), Revision(revision=13)]
    )
    base = choose_base(
        revs,
        msgspec.convert(
            {"revision": 13, "serving_revision": 11,
             "deployment": {"revision": 13, "status": "FAILED"}}, Status
        ),
    )  # fmt: skip
    update = json.loads(jsonout.line(jsonout.update_record("deploy", result, base=base,
                                                           changes=["+env A"])))  # fmt: skip
    assert update == {
        "kind": "update",
        "action": "deploy",
        "name": "web",
        "revision": 14,
        "url": "http://gw/p-web",
        "image": "r/p/web:v1",
        "tag": "v1",
        "memory_reservation": 32,
        "memory_limit": 64,
        "port": 8080,
        "base_revision": 11,
        "base": "serving",
        "changes": ["+env A"],
        "warnings": [],
    }
    event = Event(type="deployment.failed", message="m", created_at="t", revision=14,
                  reason="r", last_lines=["x"])  # fmt: skip
    assert jsonout.progress_event(event) == {
        "kind": "event", "type": "deployment.failed", "created_at": "t", "message": "m",
        "revision": 14, "reason": "r", "last_lines": ["x"],
    }  # fmt: skip
    assert jsonout.event_record(Event(type="a", message="b", created_at="c")) == {
        "type": "a", "created_at": "c", "message": "b",
    }  # fmt: skip
    line = jsonout.line(jsonout.result_record("web", "FAILED", ok=False, revision=14,
                                              reason="r", serving_revision=11))  # fmt: skip
    assert "\n" not in line
    assert json.loads(line) == {
        "kind": "result", "ok": False, "status": "FAILED", "name": "web", "revision": 14,
        "reason": "r", "serving_revision": 11,
    }  # fmt: skip
