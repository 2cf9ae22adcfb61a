"""Fixtures: one real platform per test session, users and tokens, API helpers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from services.api.admin import add_user
from tests.stack import Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    # Fault injection last: restarting dockerd kills every container on the machine.
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("docker") is None:
        pytest.fail("docker CLI missing: run `make test` (it installs and starts dockerd)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no Docker engine answers: run `make test` (it starts dockerd)")
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        s.stop()
        s.remove_docker_objects()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        s = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
        if isinstance(s, Stack):
            report.sections.append(("platform logs", s.logs(60)))


class Api:
    """A thin requests wrapper bound to one token (or none)."""

    def __init__(self, stack: Stack, token: str | None = None, prefix: str = "/servicectl-1"):
        self.stack = stack
        self.base = stack.api_url + prefix
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"X-Auth-Token": self.token} if self.token else {}
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = self.headers(kw.pop("headers", None))
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def make_user(stack: Stack, project: str, password: str = "correct horse") -> tuple[str, str]:
    username = unique("u")
    asyncio.run(add_user(stack.settings, username, project, password))
    return username, password


def login(stack: Stack, username: str, password: str, project: str) -> str:
    r = requests.post(
        f"{stack.api_url}/auth/tokens",
        json={"username": username, "password": password, "project": project},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@pytest.fixture
def project() -> str:
    return unique("p")


@pytest.fixture
def api(stack: Stack, project: str) -> Api:
    user, pw = make_user(stack, project)
    return Api(stack, login(stack, user, pw, project))


@pytest.fixture
def other_api(stack: Stack) -> Api:
    """A user of another project."""
    other = unique("q")
    user, pw = make_user(stack, other)
    return Api(stack, login(stack, user, pw, other))


@pytest.fixture(scope="session")
def busybox_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker build context for a tiny HTTP service that honours CONTEXT_ROOT."""
    d = tmp_path_factory.mktemp("busybox-ctx")
    shutil.copy("/bin/busybox", d / "busybox")
    (d / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'CMD ["/bin/sh", "-c", "mkdir -p /www$CONTEXT_ROOT && '
        'echo \\"${GREETING:-hello} from $CONTEXT_ROOT\\" > /www$CONTEXT_ROOT/index.html && '
        "echo serving $CONTEXT_ROOT on port ${PORT:-8080} && "
        'exec httpd -f -v -p ${PORT:-8080} -h /www"]\n'
    )
    return d
