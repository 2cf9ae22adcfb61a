"""Name and definition rules: both sides of every rule (pure, no servers)."""

from __future__ import annotations

import pytest

from shared.models import EnvVar, HealthCheck
from shared.rules import (
    RuleViolation,
    check_environment,
    check_health_check,
    check_memory,
    check_port,
    check_project,
    check_service_name,
    check_tag,
    parse_status_codes,
)

P = "proj"  # 4 characters: with '-', a name may have 27


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("web", None),
        ("a", None),
        ("a1", None),
        ("my-service-2", None),
        ("a" * 27, None),  # 4 + 1 + 27 = 32: exactly the limit
        ("a" * 28, "too long"),  # 33
        ("", "must not be empty"),
        ("1abc", "begin with a lower-case letter"),
        ("-abc", "begin with a lower-case letter"),
        ("Abc", "begin with a lower-case letter"),
        ("abc-", "end with a letter or digit"),
        ("ab_c", "only lower-case letters"),
        ("abC", "only lower-case letters"),
        ("ab.c", "only lower-case letters"),
        ("ab c", "only lower-case letters"),
        ("ab/c", "only lower-case letters"),
        ("über", "begin with a lower-case letter"),
        ("abü", "only lower-case letters"),
    ],
)
def test_service_name_rules(name: str, error: str | None) -> None:
    if error is None:
        assert check_service_name(P, name) == name
    else:
        with pytest.raises(RuleViolation, match=error):
            check_service_name(P, name)


def test_service_name_limit_depends_on_project_length() -> None:
    assert check_service_name("p" * 10, "s" * 21)  # 10 + 1 + 21 = 32
    with pytest.raises(RuleViolation, match="33 characters"):
        check_service_name("p" * 10, "s" * 22)


@pytest.mark.parametrize(
    ("project", "ok"),
    [
        ("demo", True),
        ("team_a", True),
        ("team-a", True),
        ("a1", True),
        ("a__b", True),
        ("a---b", True),
        ("1team", False),
        ("Team", False),
        ("team_", False),
        ("team-", False),
        ("a___b", False),
        ("a_-b", False),
        ("a.b", False),
        ("", False),
        ("a" * 30, True),
        ("a" * 31, False),
    ],
)
def test_project_rules(project: str, ok: bool) -> None:
    if ok:
        assert check_project(project) == project
    else:
        with pytest.raises(RuleViolation):
            check_project(project)


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1", True),
        ("latest", True),
        ("1.2.3-rc_1", True),
        ("_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        (".x", False),
        ("-x", False),
        ("a:b", False),
        ("a/b", False),
        ("a b", False),
    ],
)
def test_tag_rules(tag: str, ok: bool) -> None:
    if ok:
        assert check_tag(tag) == tag
    else:
        with pytest.raises(RuleViolation, match="container-tag"):
            check_tag(tag)


@pytest.mark.parametrize(
    ("reservation", "limit", "error"),
    [
        (32, 64, None),
        (6, 6, None),
        (64, 64, None),
        (5, 64, "memory-reservation must be at least 6"),
        (0, 64, "memory-reservation"),
        (-5, 64, "memory-reservation"),
        (6, 5, "memory-limit must be at least 6"),
        (128, 64, "greater than or equal"),
        (32, 70000, "at most 65536"),
        (4000, 8000, None),
        (4097, 8000, "never be placed: no host has more than 4096 MB"),
    ],
)
def test_memory_rules(reservation: int, limit: int, error: str | None) -> None:
    if error is None:
        check_memory(reservation, limit, 65536, 4096)
    else:
        with pytest.raises(RuleViolation, match=error):
            check_memory(reservation, limit, 65536, 4096)


@pytest.mark.parametrize(
    ("port", "ok"), [(1, True), (80, True), (65535, True), (0, False), (65536, False), (-1, False)]
)
def test_port_rules(port: int, ok: bool) -> None:
    if ok:
        assert check_port(port) == port
    else:
        with pytest.raises(RuleViolation, match="container-port"):
            check_port(port)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ([EnvVar(name="A", value="b")], None),
        ([EnvVar(name="_A1", value="tab\there")], None),
        ([EnvVar(name="", value="x")], "must not be empty"),
        ([EnvVar(name="1A", value="x")], "must start with a letter"),
        ([EnvVar(name="A-B", value="x")], "only letters"),
        ([EnvVar(name="A", value="x"), EnvVar(name="A", value="y")], "more than once"),
        ([EnvVar(name="A", value="line\nbreak")], "control characters"),
        ([EnvVar(name="A", value="x\r\nSet-Cookie: y")], "control characters"),
        ([EnvVar(name="A", value="nul\x00")], "control characters"),
        ([EnvVar(name="A", value="x" * 40000)], "at most"),
        ([EnvVar(name=f"V{i}", value="x") for i in range(201)], "at most 200"),
    ],
)
def test_environment_rules(env: list[EnvVar], error: str | None) -> None:
    if error is None:
        check_environment(env)
    else:
        with pytest.raises(RuleViolation, match=error):
            check_environment(env)


@pytest.mark.parametrize(
    ("spec", "ranges"),
    [
        ("200-299", [(200, 299)]),
        ("200,204", [(200, 200), (204, 204)]),
        ("200-299, 404", [(200, 299), (404, 404)]),
    ],
)
def test_status_codes_parse(spec: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_status_codes(spec) == ranges


@pytest.mark.parametrize("spec", ["", "2xx", "299-200", "99", "600", "200-", "200;204"])
def test_status_codes_reject(spec: str) -> None:
    with pytest.raises(RuleViolation, match="status_codes"):
        parse_status_codes(spec)


@pytest.mark.parametrize(
    ("hc", "error"),
    [
        (HealthCheck(rel_path="/health", status_codes="200-299", interval=10), None),
        (HealthCheck(rel_path="/", status_codes="200", interval=5), None),
        (HealthCheck(rel_path="health", status_codes="200", interval=10), "start with '/'"),
        (HealthCheck(rel_path="/../x", status_codes="200", interval=10), "'..'"),
        (HealthCheck(rel_path="/%2e%2e/x", status_codes="200", interval=10), "'..'"),
        (HealthCheck(rel_path="/a/%2E/x", status_codes="200", interval=10), "'..'"),
        (HealthCheck(rel_path="/a%2Fb", status_codes="200", interval=10), "encoded '/'"),
        (HealthCheck(rel_path="/a%20b", status_codes="200", interval=10), None),
        (HealthCheck(rel_path="/a b", status_codes="200", interval=10), "path characters"),
        (HealthCheck(rel_path="/a?b", status_codes="200", interval=10), "path characters"),
        (HealthCheck(rel_path="/h", status_codes="200", interval=4), "interval"),
        (HealthCheck(rel_path="/h", status_codes="200", interval=301), "interval"),
    ],
)
def test_health_check_rules(hc: HealthCheck, error: str | None) -> None:
    if error is None:
        assert check_health_check(hc) == hc
    else:
        with pytest.raises(RuleViolation, match=error):
            check_health_check(hc)
