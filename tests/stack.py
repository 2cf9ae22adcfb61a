"""Start the platform's real servers for tests: nats-server, registry, HAProxy, our services.

Each `Stack` gets random loopback ports, its own data dir and its own instance
label, so stacks never see each other's state or containers. Processes are
started with their log in the stack's dir; `Stack.logs()` shows them when a test
fails. Nothing here is a fake: these are the binaries `make up` runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from deploy import configs, keys
from services.gateway import haproxy_config
from shared import bus as busmod
from shared import names, natsserver
from shared.bus import Bus
from shared.settings import Settings

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Proc:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        ready: Callable[[], bool],
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        assert not self.alive(), f"{self.name} already running"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        log.write(f"\n=== start {self.name}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            return self.ready()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except RuntimeError:
                raise
            except Exception:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.popen is not None:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, needle: str) -> bool:
        try:
            return needle in self.log_path.read_text(errors="replace")
        except OSError:
            return False


@dataclass
class NatsServer:
    """A nats-server of a test module's own, which the tests may kill and start again."""

    proc: Proc
    settings: Settings


def _logged_since_start(proc_holder: dict[str, Proc], name: str, marker: str) -> Callable[[], bool]:
    """Ready once the process's log, since its last start, contains `marker`."""

    def check() -> bool:
        text = proc_holder[name].log_path.read_text(errors="replace")
        return marker in text.rsplit("=== start", 1)[-1]

    return check


class Stack:
    """One platform: its ports, data dir, settings and processes."""

    COMPONENTS = ("nats", "registry", "haproxy", "api", "deployer", "logs", "gateway")

    def __init__(
        self,
        base: Path,
        extra_env: dict[str, str] | Callable[[dict[str, int]], dict[str, str]] | None = None,
    ) -> None:
        self.base = base
        self.instance = "t" + uuid.uuid4().hex[:8]
        self.ports = {
            "nats": free_port(),
            "api": free_port(),
            "gateway": free_port(),
            "registry": free_port(),
        }
        env = {
            "SERVICECTL_DATA_DIR": str(base / "data"),
            "SERVICECTL_INSTANCE": self.instance,
            "SERVICECTL_NATS_URL": f"nats://127.0.0.1:{self.ports['nats']}",
            "SERVICECTL_API_PORT": str(self.ports["api"]),
            "SERVICECTL_API_PREFIX": "/servicectl-1",
            "SERVICECTL_GATEWAY_PORT": str(self.ports["gateway"]),
            "SERVICECTL_REGISTRY_ADDR": f"127.0.0.1:{self.ports['registry']}",
            "SERVICECTL_RECONCILE_INTERVAL": "2",
            "SERVICECTL_DEPLOY_DEADLINE": "8",
            "SERVICECTL_LOG_LEVEL": "DEBUG",
            "SERVICECTL_STOP_TIMEOUT": "3",
        }
        env.update((extra_env(self.ports) if callable(extra_env) else extra_env) or {})
        self.service_env = env
        self.settings = Settings.from_env(env)
        self.env = {**os.environ, **env}
        (base / "data").mkdir(parents=True, exist_ok=True)
        (base / "logs").mkdir(parents=True, exist_ok=True)
        keys.ensure_all(self.settings)
        self.nats_config = natsserver.write_config(self.settings)
        self.registry_config = configs.write_registry_config(self.settings)
        self.haproxy_config = configs.write_haproxy_config(self.settings)
        self.procs: dict[str, Proc] = {}
        self._define()

    # ---------------------------------------------------------------- urls
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def api_base(self) -> str:
        """The base URL clfpy is given (with the prefix and a trailing slash)."""
        return f"{self.api_url}/servicectl-1/"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.ports['registry']}"

    # ---------------------------------------------------------------- nats
    @asynccontextmanager
    async def bus(self, name: str = "test") -> AsyncIterator[Bus]:
        """A NATS connection of the test's own to the stack's server, closed afterwards."""
        b = await busmod.connect(self.settings, name=name)
        try:
            yield b
        finally:
            await b.close()

    # ---------------------------------------------------------------- processes
    def _define(self) -> None:
        logs = self.base / "logs"
        py = sys.executable
        p = self.ports

        def http_ok(url: str, statuses: tuple[int, ...] = (200,)) -> Callable[[], bool]:
            return lambda: requests.get(url, timeout=0.5).status_code in statuses

        spec: dict[str, tuple[list[str], dict[str, str], Callable[[], bool]]] = {
            "nats": (
                [str(VENV_BIN / "nats-server"), "-c", str(self.nats_config)],
                self.env,
                lambda: port_open(p["nats"]),
            ),
            "registry": (
                ["/usr/bin/docker-registry", "serve", str(self.registry_config)],
                self.env,
                http_ok(f"http://{self.registry}/v2/", (401,)),
            ),
            "haproxy": (
                haproxy_config.argv(self.settings),
                self.env,
                lambda: port_open(p["gateway"]) and self.settings.haproxy_socket_path.exists(),
            ),
            "api": (
                [py, "-m", "services.api"],
                self.env,
                http_ok(f"{self.api_url}/healthz"),
            ),
            "deployer": ([py, "-m", "services.deployer"], self.env, lambda: True),
            "logs": ([py, "-m", "services.logs"], self.env, lambda: True),
            "gateway": ([py, "-m", "services.gateway"], self.env, lambda: True),
        }
        for name, (argv, env, ready) in spec.items():
            self.procs[name] = Proc(name, argv, env, logs / f"{name}.log", ready)
        for name in ("deployer", "logs", "gateway"):
            self.procs[name].ready = _logged_since_start(self.procs, name, " ready")

    def start(self, components: tuple[str, ...] = COMPONENTS) -> None:
        for name in components:
            self.procs[name].start()

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"----- {name} -----\n{proc.log_tail(lines)}"
            for name, proc in self.procs.items()
            if proc.popen is not None
        )

    # ---------------------------------------------------------------- docker cleanup
    def remove_docker_objects(self) -> None:
        label = f"{names.LABEL_INSTANCE}={self.instance}"
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={label}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        images = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", self.registry + "/*/*"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if images:
            subprocess.run(["docker", "rmi", "-f", *images], capture_output=True)
