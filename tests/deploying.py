"""Helpers for tests that deploy: push an image, send definitions, wait for states."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from shared import names
from tests.client import Api
from tests.stack import Stack

T = TypeVar("T")


def docker(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "--config", str(config), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def docker_login(config: Path, creds: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker login` with a `view=docker` answer, the password on stdin."""
    return docker(
        config,
        "login",
        "-u",
        creds["user"],
        "--password-stdin",
        creds["proxy_endpoint"],
        input=creds["password"],
    )


def push(api: Api, service: str, image: str, tag: str, config: Path) -> str:
    """Push `image` as `<service>:<tag>` with the service's own credentials."""
    creds = api.get(f"/services/{service}", params={"view": "docker"}).json()
    r = docker_login(config, creds)
    assert r.returncode == 0, r.stderr
    target = f"{creds['repo_uri']}:{tag}"
    assert docker(config, "tag", image, target).returncode == 0
    r = docker(config, "push", target)
    assert r.returncode == 0, r.stderr
    return target


def definition(
    tag: str = "v1",
    env: dict[str, str] | None = None,
    *,
    port: int = 8080,
    reservation: int = 16,
    limit: int = 64,
) -> dict[str, Any]:
    return {
        "container-tag": tag,
        "memory-reservation": reservation,
        "memory-limit": limit,
        "container-port": port,
        "environment": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except requests.RequestException as err:
            last = err
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def url(stack: Stack, project: str, service: str, path: str = "/") -> str:
    return f"{stack.gateway_url}/{project}-{service}{path}"


def get(u: str) -> requests.Response:
    return requests.get(u, timeout=5)


def wait_text(stack: Stack, project: str, service: str, text: str, timeout: float = 60) -> None:
    def check() -> bool:
        r = get(url(stack, project, service))
        return r.status_code == 200 and text in r.text

    wait_for(check, timeout, f"{project}-{service} to answer {text!r}")


def status(api: Api, service: str) -> dict[str, Any]:
    r = api.get(f"/services/{service}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["status"]
    return body


def event_types(api: Api, service: str) -> list[str]:
    return [e["type"] for e in status(api, service)["events"]]


def wait_event(api: Api, service: str, kind: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        for e in status(api, service)["events"]:
            if e["type"] == kind:
                return e  # type: ignore[no-any-return]
        return None

    return wait_for(check, timeout, f"event {kind} of {service}")


def containers(stack: Stack, project: str, service: str) -> list[str]:
    r = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label={names.LABEL_INSTANCE}={stack.instance}",
            "--filter",
            f"label={names.LABEL_PROJECT}={project}",
            "--filter",
            f"label={names.LABEL_SERVICE}={service}",
        ],
        capture_output=True,
        text=True,
    )
    return r.stdout.split()


class Hammer:
    """Loops GET requests through the gateway in a thread; counts failures."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                r = session.get(self.target, timeout=5)
                if r.status_code == 200:
                    self.ok += 1
                    self.bodies.add(r.text.strip())
                else:
                    self.failures.append(f"{r.status_code} {r.text[:80]}")
            except requests.RequestException as err:
                self.failures.append(repr(err))

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
