"""Fixtures of the integration tests: one real platform per test session, users and tokens.

Also a nats-server of a module's own (`nats_settings`) for tests of the bus
adapter and the log pipeline that need no platform around it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import keys
from shared import natsserver
from shared.settings import Settings
from tests.client import Api, login, make_user, unique
from tests.stack import VENV_BIN, NatsServer, Proc, Stack, free_port, port_open

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


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


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of the module's own (random port, temporary store)."""
    base: Path = tmp_path_factory.mktemp("nats")
    port = free_port()
    settings = Settings(nats_url=f"nats://127.0.0.1:{port}", data_dir=base)
    keys.ensure_all(settings)
    conf = natsserver.write_config(settings)
    argv = [str(VENV_BIN / "nats-server"), "-c", str(conf)]
    proc = Proc("nats", argv, {}, base / "nats.log", lambda: port_open(port))
    proc.start()
    try:
        yield NatsServer(proc, settings)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def nats_settings(nats_server: NatsServer) -> Settings:
    return nats_server.settings


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
