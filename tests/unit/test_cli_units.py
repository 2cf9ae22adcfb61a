"""The CLI's pure parts and argument handling: env files, definitions, rendering, watching, config.

No servers: these run in milliseconds (the `--help` checks start the installed
`servicectl` binary, which does not talk to any API).
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from servicectl import cli, config, render
from servicectl.client import error_message
from servicectl.context import Context, UsageError
from servicectl.definitions import Changes, describe_changes, next_definition
from servicectl.envfile import EnvFileError, merge_env, parse_assignment, parse_env_file
from servicectl.models import EnvVar, Event, Revision, Revisions, ServiceView, Status
from servicectl.watch import DeployWatch

SERVICECTL = Path(sys.executable).parent / "servicectl"
SUBCOMMANDS = [
    "login", "logout", "whoami", "nats", "ls", "create", "delete", "push", "deploy",
    "status", "logs", "events", "revisions", "rollback", "env", "health", "scale",
    "completion",
]  # fmt: skip


# ---------------------------------------------------------------- env files
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("A=1", [("A", "1")]),
        ("# comment\n\n  \nA=1\n# B=2\n", [("A", "1")]),
        ("A=\n", [("A", "")]),
        ("A=b=c", [("A", "b=c")]),
        ("  A = spaced value  ", [("A", "spaced value")]),
        ('A="quoted value"', [("A", "quoted value")]),
        ("A='single # not a comment'", [("A", "single # not a comment")]),
        ('A="it\'s"', [("A", "it's")]),
        ('A=""', [("A", "")]),
        ("A=x # kept", [("A", "x # kept")]),
        ('A=mid"quote', [("A", 'mid"quote')]),
        ("export A=1", [("A", "1")]),
        ("A=1\r\nB=2\r\n", [("A", "1"), ("B", "2")]),
        ("\ufeffA=1", [("A", "1")]),
        ("_x9=1\nA=1\nA=2", [("_x9", "1"), ("A", "1"), ("A", "2")]),
    ],
)
def test_env_file_lines(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_env_file(text) == expected


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("A=1\nJUSTANAME\n", 2, "expected NAME=VALUE"),
        ("# c\n\n=value", 3, "name before '=' is empty"),
        ("1A=x", 1, "not a valid variable name"),
        ("A-B=x", 1, "not a valid variable name"),
        ('A=1\nB=2\nC="open', 3, "does not end with it"),
        ("A='", 1, "does not end with it"),
        ("A=\"mixed'", 1, "does not end with it"),
    ],
)
def test_env_file_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(EnvFileError) as err:
        parse_env_file(text, "prod.env")
    assert f"prod.env, line {line}:" in str(err.value)
    assert words in str(err.value)


def test_env_assignments_and_merging() -> None:
    assert parse_assignment("A=b=c") == ("A", "b=c")
    assert parse_assignment("A=") == ("A", "")
    assert parse_assignment('A="kept"') == ("A", '"kept"')  # the shell already unquoted
    for bad in ("A", "=x", "9=x", "A B=x"):
        with pytest.raises(EnvFileError):
            parse_assignment(bad)
    assert merge_env([("A", "1"), ("B", "1")], [("A", "2"), ("C", "3")]) == {
        "A": "2",
        "B": "1",
        "C": "3",
    }


# ---------------------------------------------------------------- definitions
ROOT = "/p-web"


def revision(**kw: object) -> Revision:
    base: dict[str, object] = {
        "revision": 3,
        "container_tag": "v2",
        "container_image": "127.0.0.1:5000/p/web:v2",
        "container_memory_reservation": 32,
        "container_memory_limit": 64,
        "container_port": 8080,
        "environment": [
            EnvVar(name="GREETING", value="hi"),
            EnvVar(name="CONTEXT_ROOT", value=ROOT),
            EnvVar(name="PORT", value="8080"),
        ],
    }
    base.update(kw)
    return Revision(**base)  # type: ignore[arg-type]


def env_of(d: object) -> dict[str, str]:
    return {e.name: e.value for e in d.environment}  # type: ignore[attr-defined]


def test_first_deploy_uses_defaults() -> None:
    d = next_definition(None, Changes(), ROOT)
    assert (d.container_tag, d.memory_reservation, d.memory_limit, d.container_port) == (
        "latest",
        64,
        128,
        8080,
    )
    assert d.environment == []
    assert msgspec.to_builtins(d) == {
        "container-tag": "latest",
        "memory-reservation": 64,
        "memory-limit": 128,
        "container-port": 8080,
        "environment": [],
    }


def test_deploy_keeps_current_values_without_injected_variables() -> None:
    d = next_definition(revision(), Changes(tag="v3", env={"MODE": "x"}), ROOT)
    assert (d.container_tag, d.memory_reservation, d.memory_limit, d.container_port) == (
        "v3",
        32,
        64,
        8080,
    )
    assert env_of(d) == {"GREETING": "hi", "MODE": "x"}


def test_user_set_context_root_and_port_are_kept() -> None:
    rev = revision(
        environment=[EnvVar(name="CONTEXT_ROOT", value="/other"), EnvVar(name="PORT", value="1")]
    )
    assert env_of(next_definition(rev, Changes(), ROOT)) == {"CONTEXT_ROOT": "/other", "PORT": "1"}


@pytest.mark.parametrize(
    ("changes", "memory"),
    [
        (Changes(), (32, 64)),
        (Changes(memory_limit=128), (32, 128)),
        (Changes(memory_limit=16), (16, 16)),
        (Changes(memory_reservation=48), (48, 64)),
        (Changes(memory_reservation=100), (100, 100)),
        (Changes(memory_reservation=100, memory_limit=50), (100, 50)),  # the API says why not
    ],
)
def test_memory_changes(changes: Changes, memory: tuple[int, int]) -> None:
    d = next_definition(revision(), changes, ROOT)
    assert (d.memory_reservation, d.memory_limit) == memory


def test_unset_clear_and_tag_from_image() -> None:
    assert env_of(next_definition(revision(), Changes(unset=["GREETING", "NOPE"]), ROOT)) == {}
    d = next_definition(revision(), Changes(clear_env=True, env={"A": "1"}), ROOT)
    assert env_of(d) == {"A": "1"}
    assert next_definition(revision(container_tag=""), Changes(), ROOT).container_tag == "v2"


def test_describe_changes() -> None:
    assert describe_changes(None, next_definition(None, Changes(), ROOT), ROOT) == ["first deploy"]
    new = next_definition(
        revision(),
        Changes(tag="v3", port=9000, memory_limit=128, env={"GREETING": "yo", "B": "1"}),
        ROOT,
    )
    assert describe_changes(revision(), new, ROOT) == [
        "tag v2 -> v3",
        "memory 32-64 MB -> 32-128 MB",
        "port 8080 -> 9000",
        "~env GREETING",
        "+env B",
    ]
    gone = next_definition(revision(), Changes(clear_env=True), ROOT)
    assert describe_changes(revision(), gone, ROOT) == ["-env GREETING"]
    same = next_definition(revision(), Changes(), ROOT)
    assert describe_changes(revision(), same, ROOT) == [
        "no changes (a new revision of the same definition)"
    ]


# ---------------------------------------------------------------- watching a deploy
def ev(kind: str, revision: int = 0, **kw: object) -> Event:
    return Event(type=kind, revision=revision, message=kind, created_at="t", **kw)  # type: ignore[arg-type]


def status(**kw: object) -> Status:
    return msgspec.convert(kw, Status)


def test_events_only_make_the_watch_look_at_the_status() -> None:
    w = DeployWatch(4)
    assert w.on_event(ev("deployment.completed", 3)) is False
    assert w.on_event(ev("deployment.started", 4)) is False
    assert w.on_event(ev("deployment.completed", 4)) is True
    assert w.outcome is None  # an event alone decides nothing
    done = w.on_status(status(revision=4, deployment={"revision": 4, "status": "COMPLETED"}))
    assert done is not None and done.ok and done.revision == 4

    w = DeployWatch(4)
    assert w.on_event(
        ev("deployment.failed", 4, reason="crashed", last_lines=["a", "b"], rolled_back_to=2)
    )
    failed = w.on_status(
        status(
            revision=4,
            serving_revision=2,
            deployment={"revision": 4, "status": "FAILED", "reason": "crashed"},
        )
    )
    assert failed is not None and not failed.ok
    assert (failed.reason, failed.last_lines, failed.rolled_back_to) == ("crashed", ("a", "b"), 2)

    w = DeployWatch(4)
    assert w.on_event(ev("service.updated", 5)) is True
    late = w.on_status(status(revision=5))
    assert late is not None and late.superseded_by == 5


def test_a_forged_completion_event_cannot_make_a_failed_deploy_succeed() -> None:
    w = DeployWatch(7)
    assert w.on_event(ev("deployment.completed", 7)) is True
    done = w.on_status(
        status(revision=7, deployment={"revision": 7, "status": "FAILED", "reason": "OOM"})
    )
    assert done is not None and not done.ok and done.reason == "OOM"


def test_watch_status_and_event_details_win() -> None:
    w = DeployWatch(2)
    assert (
        w.on_status(status(revision=2, deployment={"revision": 1, "status": "COMPLETED"})) is None
    )
    assert (
        w.on_status(status(revision=2, deployment={"revision": 2, "status": "IN_PROGRESS"})) is None
    )
    assert w.phase(status(deployment={"revision": 2, "status": "IN_PROGRESS"})) == "in progress"
    failed = w.on_status(
        status(
            revision=2,
            serving_revision=1,
            deployment={"revision": 2, "status": "FAILED", "reason": "unhealthy"},
        )
    )
    assert failed is not None and (failed.ok, failed.reason, failed.rolled_back_to) == (
        False,
        "unhealthy",
        1,
    )
    w.failure_details(ev("deployment.failed", 2, reason="unhealthy", last_lines=["x"]))
    assert w.outcome is not None and w.outcome.last_lines == ("x",)

    ok = DeployWatch(2).on_status(
        status(revision=2, deployment={"revision": 2, "status": "COMPLETED"})
    )
    assert ok is not None and ok.ok
    gone = DeployWatch(2).on_status(status(revision=3))
    assert gone is not None and gone.superseded_by == 3


def test_watch_new_events_skips_what_was_seen() -> None:
    old = Event(type="a", message="old", created_at="1")
    w = DeployWatch(1, seen=[old])
    new1 = Event(type="b", message="new", created_at="2")
    new2 = Event(type="c", message="newer", created_at="3")
    assert w.new_events(status(events=[new1, old])) == [new1]  # newest first in, oldest first out
    assert w.new_events(status(events=[new2, new1, old])) == [new2]
    assert not w.is_new(new2)


# ---------------------------------------------------------------- rendering
def test_table() -> None:
    assert render.table(["A", "LONGER", "C"], [["xx", None, ""], [1, "y", "last"]]) == (
        "A   LONGER  C\nxx  -       -\n1   y       last"
    )


VIEW = {
    "name": "web",
    "links": [
        {"href": "/services/web", "rel": "self"},
        {"href": "http://gw/p-web", "rel": "deployment"},
    ],
    "status": {
        "service_status": "ACTIVE",
        "count_desired": 1,
        "count_running": 1,
        "count_pending": 0,
        "revision": 2,
        "serving_revision": 2,
        "restarts": 0,
        "future_field": {"ignored": True},
        "tasks": [
            {
                "task_name": "2-abcdef01",
                "created_at": "2025-01-02T03:04:05.678Z",
                "desired_status": "RUNNING",
                "last_status": "RUNNING",
                "health": "healthy",
                "task_definition": {
                    "name": "p-web",
                    "revision": 2,
                    "status": "ACTIVE",
                    "container_image": "reg/p/web:v1",
                    "container_memory_reservation": 16,
                    "container_memory_limit": 64,
                    "container_port": 8080,
                },
            }
        ],
        "events": [
            {"created_at": "2025-01-02T03:04:07Z", "message": "msg-two", "type": "b"},
            {"created_at": "2025-01-02T03:04:06Z", "message": "msg-one", "type": "a"},
        ],
        "target_health": {
            "health_check_path": "/p-web",
            "interval": 10,
            "status_codes": "200-499",
            "targets": [{"target": "2-abcdef01", "port": 32768, "health": "healthy"}],
        },
        "deployment": {"revision": 2, "status": "COMPLETED"},
    },
}


def test_status_report() -> None:
    view = msgspec.convert(VIEW, ServiceView)
    assert view.url == "http://gw/p-web" and view.context_root == "/p-web"
    text = render.status_report(view)
    assert "Service   web (ACTIVE)" in text
    assert "Revision  2 (serving: 2)" in text
    assert "Deploy    revision 2 COMPLETED" in text
    task_row = (
        "2-abcdef01  2    RUNNING  healthy  16-64 MB  8080  reg/p/web:v1  2025-01-02 03:04:05"
    )
    assert task_row in text
    assert text.index("msg-one") < text.index("msg-two")  # oldest first
    assert "msg-one" not in render.status_report(view, events=1)
    inactive = msgspec.convert({"name": "x", "status": {"service_status": "INACTIVE"}}, ServiceView)
    assert "none yet" in render.status_report(inactive)


def test_revisions_and_logs_rendering() -> None:
    revs = msgspec.convert(
        {
            "name": "web",
            "revision": 3,
            "revisions": [
                {"revision": 3, "container_tag": "v1", "rolled_back_from": 1, "environment": []},
                {
                    "revision": 1,
                    "container_image": "r/p/web:v1",
                    "environment": [{"name": "A", "value": "1"}],
                },
            ],
        },
        Revisions,
    )
    assert revs.current() is not None and revs.current().revision == 3  # type: ignore[union-attr]
    lines = render.revisions_table(revs, serving=1, show_env=True).splitlines()
    assert lines[1].startswith("1    v1") and "serving" in lines[1] and "A=1" in lines[1]
    assert "current, copy of 1 (rollback)" in lines[2]
    streams = msgspec.convert(
        [
            {
                "stream_name": "2-b",
                "log_events": [{"time": "2025-01-01T00:00:02.000Z", "message": "b2"}],
            },
            {
                "stream_name": "1-a",
                "log_events": [
                    {"time": "2025-01-01T00:00:01.000Z", "message": "a1"},
                    {"time": "2025-01-01T00:00:03.500Z", "message": "a3"},
                ],
            },
        ],
        list[render.LogStream],
    )
    assert render.log_streams(streams) == [
        "2025-01-01 00:00:01.000 [1-a] a1",
        "2025-01-01 00:00:02.000 [2-b] b2",
        "2025-01-01 00:00:03.500 [1-a] a3",
    ]


def test_error_messages() -> None:
    assert error_message(404, "Not Found", b'{"Error": "no service named \'x\'"}') == (
        "no service named 'x'"
    )
    assert error_message(502, "Bad Gateway", b"<html>oops</html>") == (
        "HTTP 502 Bad Gateway: <html>oops</html>"
    )
    assert error_message(500, "Internal Server Error", b"") == "HTTP 500 Internal Server Error"


# ---------------------------------------------------------------- config
def test_config_path() -> None:
    assert config.config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path(
        "/x/servicectl/config.json"
    )
    assert config.config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/servicectl/config.json"
    )
    assert config.config_path({"HOME": "/h"}) == Path("/h/.config/servicectl/config.json")
    assert config.default_api({}) == "http://127.0.0.1:8080"
    assert config.default_api({"SERVICECTL_API": "http://a:1/p"}) == "http://a:1/p"


def test_config_is_private_and_round_trips(tmp_path: Path) -> None:
    path = config.config_path({"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.load(path) is None
    old = os.umask(0)
    try:
        config.save(path, config.Login(api="http://a", token="t1", username="u"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    config.save(path, config.Login(api="http://b", token="t2"))
    assert config.load(path) == config.Login(api="http://b", token="t2")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]
    path.write_text("{not json")
    with pytest.raises(config.ConfigError, match="damaged"):
        config.load(path)
    assert config.remove(path) and not config.remove(path)


# ---------------------------------------------------------------- arguments
def run_cli(argv: list[str], tmp_path: Path, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)},
        stdout=out,
        stderr=err,
        stdin=io.StringIO(stdin),
    )
    code = cli.run(argv, ctx)
    return code, out.getvalue(), err.getvalue()


def test_not_logged_in(tmp_path: Path) -> None:
    assert run_cli(["ls"], tmp_path) == (
        1,
        "",
        "servicectl: not logged in: run `servicectl login` first\n",
    )


def test_env_file_problems_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("# fine\nA=1\nnot an assignment\n")
    code, _, err = run_cli(["deploy", "web", "--env-file", str(bad)], tmp_path)
    assert code == 2
    assert err == f"servicectl: {bad}, line 3: expected NAME=VALUE, got 'not an assignment'\n"
    code, _, err = run_cli(["deploy", "web", "--env-file", str(tmp_path / "missing")], tmp_path)
    assert (code, err.count("\n")) == (2, 1) and "No such file or directory" in err


def test_env_files_and_flags_combine(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\nB='two words'\n")
    (tmp_path / "b.env").write_text("B=2\nC=3\n")
    args = cli.build_parser().parse_args(
        ["deploy", "web", "--env-file", str(tmp_path / "a.env"), "--env-file",
         str(tmp_path / "b.env"), "-e", "C=flag", "--unset-env", "OLD", "--port", "9000"]
    )  # fmt: skip
    changes = cli.changes_from(args)
    assert dict(changes.env) == {"A": "1", "B": "2", "C": "flag"}
    assert (changes.unset, changes.port, changes.tag) == (("OLD",), 9000, None)


def test_push_needs_a_context_or_an_image(tmp_path: Path) -> None:
    from servicectl.commands import push_source

    with pytest.raises(UsageError, match="either"):
        push_source(None, None, None)
    with pytest.raises(UsageError, match="either"):
        push_source(str(tmp_path), "img", None)
    with pytest.raises(UsageError, match="not a directory"):
        push_source(str(tmp_path / "nope"), None, None)
    with pytest.raises(UsageError, match="no Dockerfile"):
        push_source(str(tmp_path), None, None)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert push_source(str(tmp_path), None, None).context == tmp_path
    assert push_source(None, "img:1", None).image == "img:1"


def test_delete_asks_first(tmp_path: Path) -> None:
    config.save(
        config.config_path({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}),
        config.Login(api="http://127.0.0.1:9", token="t"),
    )
    code, _, err = run_cli(["delete", "web"], tmp_path, stdin="")
    assert code == 1 and "pass --yes" in err
    code, _, err = run_cli(["delete", "web"], tmp_path, stdin="other\n")
    assert code == 1 and "not deleted: 'other' is not 'web'" in err


def _binary(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVICECTL), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_help_of_every_command() -> None:
    top = _binary("--help")
    assert top.returncode == 0 and top.stderr == ""
    for name in SUBCOMMANDS:
        assert name in top.stdout
        r = _binary(name, "--help")
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout.startswith(f"usage: servicectl {name}"), name
    for action in ("list", "set", "unset"):
        r = _binary("env", action, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: servicectl env {action}"), r


def test_completion_scripts_are_printed() -> None:
    for shell in ("bash", "zsh", "fish"):
        r = _binary("completion", shell)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert f"generated by `servicectl completion {shell}`" in r.stdout


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["deploy"], "the following arguments are required: NAME"),
        (["deploy", "web", "--port", "0"], "port must be between 1 and 65535, got 0"),
        (["deploy", "web", "--memory-limit", "lots"], "must be a whole number, got 'lots'"),
        (["deploy", "web", "--env", "NOVALUE"], "expected NAME=VALUE"),
        (["deploy", "web", "--timeout", "-1"], "must be more than 0 seconds"),
        (["logs", "web", "-n", "x"], "count must be a whole number"),
        (["logs", "web", "-n", "-1"], "count must be between 0 and 10000, got -1"),
        (["logs", "web", "--streams", "101"], "streams must be between 1 and 100"),
        (["env", "unset", "web", "1A"], "'1A' is not a variable name"),
        (["env", "set", "web"], "the following arguments are required: NAME=VALUE"),
        (["env", "set", "web", "NOVALUE"], "expected NAME=VALUE"),
        (["env"], "the following arguments are required: ACTION"),
        (["scale", "web", "-1"], "N must be between 0 and 10000"),
        (["completion", "tcsh"], "invalid choice: 'tcsh'"),
        (["deploy", "web", "--unset-env", "A-B"], "'A-B' is not a variable name"),
        (["rollback", "web", "--to", "zero"], "revision must be a whole number"),
        (["create"], "the following arguments are required: NAME"),
        (["status", "web", "--bogus"], "unrecognized arguments: --bogus"),
        (["push", "web"], "give either a build context DIR or --image IMAGE"),
    ],
)
def test_wrong_arguments_one_line_exit_2(argv: list[str], words: str) -> None:
    r = _binary(*argv)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("servicectl"), r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr


def test_follow_remembers_the_last_keys() -> None:
    from servicectl.following import Seen

    seen = Seen(limit=2)
    assert seen.add(("t", 1)) and seen.add(("t", 2))
    assert not seen.add(("t", 1))
    assert seen.add(("t", 3))  # forgets ("t", 1), the oldest
    assert seen.add(("t", 1))
