"""Validation rules for everything a user names or submits. Pure functions, no I/O.

Each check raises `RuleViolation` whose message names the field and the rule, so
that the api can answer 400 with it unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

from shared.models import EnvVar, HealthCheck


class RuleViolation(ValueError):
    """Input that breaks a rule; the message is meant for the user."""


MAX_QUALIFIED_NAME = 32
MAX_PROJECT = MAX_QUALIFIED_NAME - 2
MAX_USERNAME = 64
MIN_MEMORY_RESERVATION_MB = 6  # dockerd refuses less
MIN_MEMORY_LIMIT_MB = 6  # dockerd refuses less
MAX_ENV_VARS = 200
MAX_ENV_NAME = 256
MAX_ENV_VALUE = 32 * 1024
MAX_TAG = 128
MAX_HEALTH_PATH = 1024
HEALTH_INTERVAL_RANGE = (5, 300)

_SERVICE_CHARS = re.compile(r"[a-z0-9-]*")
# Docker repository path components: alphanumerics separated by '_', '__' or dashes.
_PROJECT = re.compile(r"[a-z][a-z0-9]*(?:(?:_|__|-+)[a-z0-9]+)*")
_USERNAME = re.compile(r"[a-z][a-z0-9_-]*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STATUS_CODE_ITEM = re.compile(r"(\d{3})(?:-(\d{3}))?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PATH_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")


def check_project(project: str) -> str:
    if not project:
        raise RuleViolation("project name must not be empty")
    if len(project) > MAX_PROJECT:
        raise RuleViolation(f"project name must be at most {MAX_PROJECT} characters")
    if not _PROJECT.fullmatch(project):
        raise RuleViolation(
            "project name must start with a lower-case letter, contain only a-z, 0-9, "
            "'_' and '-', end with a letter or digit, and not put '_' next to '-' "
            "or use more than two '_' in a row"
        )
    return project


def check_username(username: str) -> str:
    if not username:
        raise RuleViolation("username must not be empty")
    if len(username) > MAX_USERNAME:
        raise RuleViolation(f"username must be at most {MAX_USERNAME} characters")
    if not _USERNAME.fullmatch(username):
        raise RuleViolation(
            "username must start with a lower-case letter and contain only a-z, 0-9, '_' and '-'"
        )
    return username


def check_service_name(project: str, name: str) -> str:
    """The service name rules of the API contract, in the order a user meets them."""
    if not name:
        raise RuleViolation("service name must not be empty")
    if not ("a" <= name[0] <= "z"):
        raise RuleViolation("service name must begin with a lower-case letter")
    if not _SERVICE_CHARS.fullmatch(name):
        raise RuleViolation(
            "service name may contain only lower-case letters a-z, digits 0-9 and '-'"
        )
    if name.endswith("-"):
        raise RuleViolation("service name must end with a letter or digit")
    total = len(project) + 1 + len(name)
    if total > MAX_QUALIFIED_NAME:
        raise RuleViolation(
            f"service name too long: '{project}-{name}' has {total} characters, "
            f"project and service name together (with '-') may have at most "
            f"{MAX_QUALIFIED_NAME}"
        )
    return name


def check_tag(tag: str) -> str:
    if not tag:
        raise RuleViolation("container-tag must not be empty")
    if len(tag) > MAX_TAG:
        raise RuleViolation(f"container-tag must be at most {MAX_TAG} characters")
    if not _TAG.fullmatch(tag):
        raise RuleViolation(
            "container-tag must start with a letter, digit or '_' and contain only "
            "letters, digits, '_', '.' and '-'"
        )
    return tag


def check_memory(
    reservation: int, limit: int, max_mb: int, max_reservation_mb: int | None = None
) -> None:
    if reservation < MIN_MEMORY_RESERVATION_MB:
        raise RuleViolation(
            f"memory-reservation must be at least {MIN_MEMORY_RESERVATION_MB} (MB), "
            f"got {reservation}"
        )
    if limit < MIN_MEMORY_LIMIT_MB:
        raise RuleViolation(
            f"memory-limit must be at least {MIN_MEMORY_LIMIT_MB} (MB), got {limit}"
        )
    if limit > max_mb:
        raise RuleViolation(
            f"memory-limit must be at most {max_mb} (MB, the memory of the largest host), "
            f"got {limit}"
        )
    if max_reservation_mb is not None and reservation > max_reservation_mb:
        raise RuleViolation(
            f"memory-reservation of {reservation} MB can never be placed: no host has more "
            f"than {max_reservation_mb} MB to reserve; ask for at most {max_reservation_mb}"
        )
    if limit < reservation:
        raise RuleViolation(
            f"memory-limit ({limit}) must be greater than or equal to "
            f"memory-reservation ({reservation})"
        )


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise RuleViolation(f"container-port must be between 1 and 65535, got {port}")
    return port


def check_environment(env: Sequence[EnvVar]) -> None:
    if len(env) > MAX_ENV_VARS:
        raise RuleViolation(
            f"environment has {len(env)} variables, at most {MAX_ENV_VARS} are allowed"
        )
    seen: set[str] = set()
    for i, var in enumerate(env):
        where = f"environment[{i}]"
        if not var.name:
            raise RuleViolation(f"{where}.name must not be empty")
        if len(var.name) > MAX_ENV_NAME:
            raise RuleViolation(f"{where}.name must be at most {MAX_ENV_NAME} characters")
        if not _ENV_NAME.fullmatch(var.name):
            raise RuleViolation(
                f"{where}.name {var.name!r} must start with a letter or '_' and contain "
                "only letters, digits and '_'"
            )
        if var.name in seen:
            raise RuleViolation(f"{where}.name {var.name!r} appears more than once")
        seen.add(var.name)
        if len(var.value) > MAX_ENV_VALUE:
            raise RuleViolation(
                f"{where}.value of {var.name} must be at most {MAX_ENV_VALUE} characters"
            )
        if _CONTROL.search(var.value):
            raise RuleViolation(
                f"{where}.value of {var.name} must not contain control characters "
                "(newlines, carriage returns, NUL ...); tabs are allowed"
            )


def parse_status_codes(spec: str) -> list[tuple[int, int]]:
    """'200-299' or '200,204' or '200-299,404' -> inclusive ranges."""
    if not spec or len(spec) > 200:
        raise RuleViolation(
            "health_check.status_codes must be codes or ranges such as '200-299' or '200,204'"
        )
    ranges: list[tuple[int, int]] = []
    for item in spec.split(","):
        m = _STATUS_CODE_ITEM.fullmatch(item.strip())
        if not m:
            raise RuleViolation(
                f"health_check.status_codes: {item.strip()!r} is not a status code or a "
                "range such as '200-299'"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not (100 <= lo <= 599 and 100 <= hi <= 599) or hi < lo:
            raise RuleViolation(
                f"health_check.status_codes: {item.strip()!r} must lie within 100-599, low to high"
            )
        ranges.append((lo, hi))
    return ranges


def status_code_matches(ranges: Sequence[tuple[int, int]], code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def check_health_check(hc: HealthCheck) -> HealthCheck:
    path = hc.rel_path
    if not path.startswith("/"):
        raise RuleViolation("health_check.rel_path must start with '/'")
    if len(path) > MAX_HEALTH_PATH:
        raise RuleViolation(f"health_check.rel_path must be at most {MAX_HEALTH_PATH} characters")
    if not _PATH_CHARS.fullmatch(path):
        raise RuleViolation(
            "health_check.rel_path may contain only URL path characters (no spaces, "
            "'?', '#' or control characters)"
        )
    decoded = unquote(path)
    if any(seg in ("..", ".") for seg in decoded.split("/")) or "%2f" in path.lower():
        raise RuleViolation(
            "health_check.rel_path must not contain '.' or '..' segments or an encoded '/', "
            "also percent-encoded (%2e, %2f)"
        )
    parse_status_codes(hc.status_codes)
    lo, hi = HEALTH_INTERVAL_RANGE
    if not lo <= hc.interval <= hi:
        raise RuleViolation(
            f"health_check.interval must be between {lo} and {hi} seconds, got {hc.interval}"
        )
    return hc


ROOT_STATUS_CODES = "200-499"  # the service's root: an app may well answer 401 or 403 there
PATH_STATUS_CODES = "200-399"  # a health path of its own must answer a success


def default_status_codes(rel_path: str) -> str:
    return ROOT_STATUS_CODES if rel_path in ("", "/") else PATH_STATUS_CODES


def on_root(hc: HealthCheck | None) -> bool:
    """The health check requests the deployment path itself (CONTEXT_ROOT)."""
    return hc is None or hc.rel_path in ("", "/")


def health_codes(hc: HealthCheck | None) -> str:
    return hc.status_codes if hc is not None else ROOT_STATUS_CODES


def health_check_path(project: str, service: str, hc: HealthCheck | None) -> str:
    """The absolute path the health check requests (under the deployment path)."""
    base = f"/{project}-{service}"
    if hc is None or hc.rel_path in ("", "/"):
        return base
    return base + hc.rel_path


def check_password(password: str) -> str:
    if len(password) < 8:
        raise RuleViolation("password must be at least 8 characters")
    if len(password) > 1024:
        raise RuleViolation("password must be at most 1024 characters")
    return password
