"""Which revision a deploy builds on, how a service's state reads, and 400s in the user's words.

Pure functions of `servicectl.definitions`, `servicectl.states` and
`servicectl.rejections`; no servers.
"""

from __future__ import annotations

import msgspec
import pytest

from servicectl.definitions import (
    Changes,
    base_note,
    choose_base,
    describe_base,
    next_definition,
    unset_but_missing,
)
from servicectl.models import EnvVar, Revision, Revisions, ServiceDefinition, Status
from servicectl.rejections import explain, explain_health_check, sources
from servicectl.states import (
    NOT_SERVING,
    in_cli_words,
    missing_image_tag,
    newest_deployment,
    service_state,
    without_api_advice,
)

ROOT = "/p-oops"


def rev(n: int, tag: str, reservation: int = 32, limit: int = 64, **env: str) -> Revision:
    return Revision(
        revision=n,
        container_tag=tag,
        container_memory_reservation=reservation,
        container_memory_limit=limit,
        container_port=8080,
        environment=[EnvVar(name=k, value=v) for k, v in env.items()],
    )


# revision 11 serves; 12 and 13 failed (13 is the newest, with a 6 MB limit)
REVS = Revisions(
    name="oops",
    revision=13,
    revisions=[rev(11, "v1", A="1"), rev(12, "v2"), rev(13, "v2", 6, 6, A="1")],
)


def status(**kw: object) -> Status:
    return msgspec.convert(kw, Status)


FAILED_13 = status(
    service_status="ACTIVE",
    revision=13,
    serving_revision=11,
    deployment={"revision": 13, "status": "FAILED", "reason": "task 13-ab was OOM-killed"},
)


# ---------------------------------------------------------------- the base revision
def test_after_a_failed_deploy_the_serving_revision_is_the_base() -> None:
    base = choose_base(REVS, FAILED_13)
    assert base.number == 11 and base.serving and base.skipped
    d = next_definition(base.revision, Changes(env={"NATS_TEST": "1"}), ROOT)
    assert (d.container_tag, d.memory_reservation, d.memory_limit) == ("v1", 32, 64)
    assert describe_base(base) == "from serving revision 11"
    assert base_note(base) == (
        "revision 13 (the newest) failed: task 13-ab was OOM-killed; "
        "building on serving revision 11 instead"
    )


@pytest.mark.parametrize(
    ("st", "number", "serving", "words"),
    [
        # the newest serves: it is the base
        (
            status(
                revision=13, serving_revision=13, deployment={"revision": 13, "status": "COMPLETED"}
            ),
            13,
            True,
            "from serving revision 13",
        ),
        # the newest is still deploying: its changes are kept, not dropped
        (
            status(
                revision=13,
                serving_revision=11,
                deployment={"revision": 13, "status": "IN_PROGRESS"},
            ),
            13,
            False,
            "from revision 13, the newest",
        ),
        # the deployer has not taken the newest up yet (its deployment is of 12)
        (
            status(
                revision=13, serving_revision=11, deployment={"revision": 12, "status": "FAILED"}
            ),
            13,
            False,
            "from revision 13, the newest",
        ),
        # nothing serves (the first deploys failed): the newest, so a fixed tag keeps the rest
        (
            status(
                revision=13, serving_revision=0, deployment={"revision": 13, "status": "FAILED"}
            ),
            13,
            False,
            "from revision 13, the newest, which failed; nothing serves yet",
        ),
    ],
)
def test_otherwise_the_newest_revision_is_the_base(
    st: Status, number: int, serving: bool, words: str
) -> None:
    base = choose_base(REVS, st)
    assert (base.number, base.serving, base.skipped) == (number, serving, False)
    assert describe_base(base) == words
    assert base_note(base) is None


def test_variables_to_unset_that_the_base_lacks() -> None:
    base = choose_base(REVS, FAILED_13)  # revision 11: A=1
    assert unset_but_missing(base, Changes(unset=("A", "B", "PORT")), ROOT) == ["B", "PORT"]
    assert unset_but_missing(base, Changes(), ROOT) == []
    first = choose_base(Revisions(name="x"), status())
    assert unset_but_missing(first, Changes(unset=("A",)), ROOT) == ["A"]


def test_no_revision_yet_means_the_defaults() -> None:
    base = choose_base(Revisions(name="x"), status(service_status="INACTIVE"))
    assert base.revision is None and base.number == 0
    assert describe_base(base) == "first deploy, from the defaults"


def test_a_serving_revision_missing_from_the_list_falls_back_to_the_newest() -> None:
    revs = Revisions(name="oops", revision=13, revisions=[rev(13, "v2")])
    assert choose_base(revs, FAILED_13).number == 13


# ---------------------------------------------------------------- the service's state
@pytest.mark.parametrize(
    ("st", "word", "newest"),
    [
        (status(service_status="INACTIVE"), "INACTIVE", None),
        (FAILED_13, "ACTIVE", ("FAILED", 13)),
        (
            status(
                service_status="ACTIVE",
                revision=1,
                serving_revision=0,
                deployment={"revision": 1, "status": "FAILED", "reason": "boom"},
            ),
            NOT_SERVING,
            ("FAILED", 1),
        ),
        (
            status(
                service_status="ACTIVE",
                revision=1,
                serving_revision=0,
                deployment={"revision": 1, "status": "IN_PROGRESS"},
            ),
            NOT_SERVING,
            ("IN_PROGRESS", 1),
        ),
        (
            status(
                service_status="ACTIVE",
                revision=14,
                serving_revision=11,
                deployment={"revision": 13, "status": "FAILED"},
            ),
            "ACTIVE",
            ("PENDING", 14),
        ),
        (
            status(service_status="ACTIVE", revision=2, serving_revision=2),
            "ACTIVE",
            ("COMPLETED", 2),
        ),
        (
            status(service_status="DRAINING", revision=2, serving_revision=0),
            "DRAINING",
            ("PENDING", 2),
        ),
    ],
)
def test_service_state(st: Status, word: str, newest: tuple[str, int] | None) -> None:
    state = service_state(st)
    assert state.word == word
    got = newest_deployment(st)
    assert (None if got is None else (got.status, got.revision)) == newest


MISSING = (
    "image 127.0.0.1:5000/p/web:nope is not in the registry (manifest unknown); push it first "
    "with the credentials from view=docker"
)


def test_push_advice_in_the_cli_s_words() -> None:
    assert missing_image_tag(MISSING) == "nope"
    assert missing_image_tag("task exited with code 1") is None
    assert without_api_advice(MISSING) == (
        "image 127.0.0.1:5000/p/web:nope is not in the registry (manifest unknown)"
    )
    said = in_cli_words(MISSING, "web")
    assert "view=docker" not in said
    assert said.endswith("push it first: servicectl push web DIR --tag nope")
    assert in_cli_words("task exited with code 1", "web") == "task exited with code 1"


# ---------------------------------------------------------------- 400s in the user's words
BASE = rev(11, "v1", 64, 128, GREETING="hi")


def rejected(message: str, changes: Changes, env_from: dict[str, str] | None = None) -> str:
    kept = next_definition(BASE, Changes(), ROOT)
    sent = next_definition(BASE, changes, ROOT)
    src = sources("oops", "revision 11", kept, sent, changes, env_from or {})
    return explain(message, sent, src)


@pytest.mark.parametrize(
    ("changes", "server", "user"),
    [
        # the reservation followed --memory-limit down: it is that flag the user typed
        (
            Changes(memory_limit=5),
            "memory-reservation must be at least 6 (MB), got 5",
            "--memory-limit must be at least 6 (MB), got 5",
        ),
        (
            Changes(memory_reservation=5),
            "memory-reservation must be at least 6 (MB), got 5",
            "--memory-reservation must be at least 6 (MB), got 5",
        ),
        # the limit followed --memory-reservation up
        (
            Changes(memory_reservation=5000),
            "memory-limit must be at most 4096 (MB), got 5000",
            "--memory-reservation must be at most 4096 (MB), got 5000",
        ),
        (
            Changes(memory_reservation=100, memory_limit=50),
            "memory-limit (50) must be greater than or equal to memory-reservation (100)",
            "--memory-limit (50) must be greater than or equal to --memory-reservation (100)",
        ),
        (
            Changes(tag="bad tag"),
            "container-tag must start with a letter, digit or '_'",
            "--tag must start with a letter, digit or '_'",
        ),
        (
            Changes(port=70000),
            "container-port must be between 1 and 65535, got 70000",
            "--port must be between 1 and 65535, got 70000",
        ),
        # a value nobody typed: where it comes from, and the flag that changes it
        (
            Changes(tag="v3"),
            "memory-limit must be at most 100 (MB), got 128",
            "memory-limit must be at most 100 (MB), got 128 (memory-limit is kept from "
            "revision 11; change it with `servicectl deploy oops --memory-limit MB`)",
        ),
    ],
)
def test_field_names_become_the_flags_typed(changes: Changes, server: str, user: str) -> None:
    assert rejected(server, changes) == user


def test_environment_entries_become_the_variable_as_given() -> None:
    changes = Changes(env={"BAD": "x\x01"})
    # sent: GREETING (kept), then BAD
    said = rejected(
        "environment[1].value of BAD must not contain control characters",
        changes,
        {"BAD": "--env BAD"},
    )
    assert said == "the value of --env BAD must not contain control characters"
    said = rejected(
        "environment[0].value of GREETING must be at most 32768 characters", changes, {}
    )
    assert said == "the value of GREETING (kept from revision 11) must be at most 32768 characters"
    assert rejected("environment has 201 variables, at most 200 are allowed", changes) == (
        "environment has 201 variables, at most 200 are allowed"
    )


def test_health_check_fields_become_flags() -> None:
    flags = {"rel_path": "--path", "interval": "--interval"}
    assert explain_health_check("health_check.rel_path must start with '/'", flags) == (
        "--path must start with '/'"
    )
    assert explain_health_check("health_check.status_codes: 'x' is not", flags) == (
        "health_check.status_codes: 'x' is not"
    )


def test_definition_is_sent_whole() -> None:
    sent = next_definition(BASE, Changes(memory_limit=16), ROOT)
    assert sent == ServiceDefinition(
        container_tag="v1",
        memory_reservation=16,
        memory_limit=16,
        container_port=8080,
        environment=[EnvVar(name="GREETING", value="hi")],
    )
