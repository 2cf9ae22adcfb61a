"""One platform for one benchmark part, plus the side-by-side Docker baselines.

`Platform` wraps the test suite's `tests.stack.Stack` (the same real binaries
`make up` runs, on random loopback ports), a user, a token and a project, and
offers what the parts need: create a service, push an image with its own
credentials, send a definition, read statuses from NATS, and run baseline
containers with `docker run`. Settings are the platform's defaults rather than
the test suite's quick ones (INFO logging, 10 s resync, 60 s deploy deadline).

Every Docker object it makes carries a label and is removed by `close`: the
platform's containers by the stack's instance label, baseline containers by
`servicectl-bench.run=<run id>` (never the platform's label, so the deployer
and the log collector leave them alone). It does not print results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.console import log
from bench.profile import Profiler
from services.api.admin import add_user
from shared import bus as busmod
from shared import kv, names
from shared.bus import Bus
from shared.models import ServiceStatus
from tests.client import Api, login
from tests.deploying import definition, push
from tests.stack import Stack, free_port

BENCH_LABEL = "servicectl-bench.run"

# The platform's own defaults, not the test suite's fast timers and DEBUG logs.
PLATFORM_ENV = {
    "SERVICECTL_LOG_LEVEL": "INFO",
    "SERVICECTL_RECONCILE_INTERVAL": "10",
    "SERVICECTL_DEPLOY_DEADLINE": "60",
    "SERVICECTL_STOP_TIMEOUT": "10",
}


def docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


class Platform:
    """A started stack with one user; use as a context manager."""

    def __init__(
        self, run_id: str, workdir: Path, profiler: Profiler | None = None, project: str = "bench"
    ) -> None:
        self.run_id = run_id
        self.profiler = profiler or Profiler(None)
        self.workdir = Path(tempfile.mkdtemp(prefix="stack-", dir=workdir))
        self.project = project
        self.stack = Stack(self.workdir, extra_env=PLATFORM_ENV)
        self.api: Api = Api(self.stack)
        self._pushes = 0

    def __enter__(self) -> Platform:
        try:
            self.stack.start()
            user = f"bench{self.run_id}"
            asyncio.run(add_user(self.stack.settings, user, self.project, "bench password"))
            token = login(self.stack, user, "bench password", self.project)
            self.api = Api(self.stack, token)
        except BaseException:
            log("platform failed to start:\n" + self.stack.logs(20))
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            log(f"platform logs after the failure:\n{self.stack.logs(25)}")
        self.close()

    def close(self) -> None:
        self.stack.stop()
        self.stack.remove_docker_objects()
        remove_baselines(self.run_id)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def profiled(self, phase: str, *names: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Profile these platform processes while the block runs (with --profile only)."""
        pids = {n: self.stack.procs[n].pid for n in names if self.stack.procs[n].pid}
        return self.profiler.around(phase, {n: pid for n, pid in pids.items() if pid})

    # ------------------------------------------------------------ services
    @property
    def token(self) -> str:
        assert self.api.token is not None
        return self.api.token

    def url(self, service: str, path: str = "/") -> str:
        return f"{self.stack.gateway_url}/{self.project}-{service}{path}"

    def create(self, service: str) -> None:
        r = self.api.post("/services", json={"name": service})
        if r.status_code != 201:
            raise RuntimeError(f"create {service}: {r.status_code} {r.text}")

    def push(self, service: str, image: str, tag: str = "v1") -> None:
        """Push with the service's own credentials, in a private docker config dir."""
        self._pushes += 1
        config = self.workdir / f"docker-{service}"
        config.mkdir(exist_ok=True)
        push(self.api, service, image, tag, config)

    def deploy(
        self,
        service: str,
        env: Mapping[str, str] | None = None,
        *,
        tag: str = "v1",
        reservation: int = 16,
        limit: int = 64,
    ) -> None:
        body = definition(tag, dict(env or {}), reservation=reservation, limit=limit)
        r = self.api.put(f"/services/{service}", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"update {service}: {r.status_code} {r.text}")

    def status(self, service: str) -> dict[str, Any]:
        r = self.api.get(f"/services/{service}")
        r.raise_for_status()
        st: dict[str, Any] = r.json()["status"]
        return st

    def containers(self, service: str | None = None) -> list[str]:
        """Ids of the platform's containers (of one service, or all), running or not."""
        filters = ["--filter", f"label={names.LABEL_INSTANCE}={self.stack.instance}"]
        if service is not None:
            filters += ["--filter", f"label={names.LABEL_SERVICE}={service}"]
        r = subprocess.run(["docker", "ps", "-aq", "--no-trunc", *filters], capture_output=True)
        return r.stdout.decode().split()

    def host_port(self, service: str) -> int:
        """The 127.0.0.1 port the service's running container publishes."""
        for cid in self.containers(service):
            r = subprocess.run(
                ["docker", "port", cid], capture_output=True, text=True, check=False
            ).stdout
            for line in r.splitlines():
                _, _, addr = line.partition(" -> ")
                if addr.startswith("127.0.0.1:"):
                    return int(addr.rsplit(":", 1)[1])
        raise RuntimeError(f"no published port for {service}")

    async def connect_bus(self) -> Bus:
        return await busmod.connect(self.stack.settings, name="servicectl-bench")

    async def statuses(self, bus: Bus) -> dict[str, ServiceStatus]:
        """Every service's status as the deployer last wrote it, keyed by service name."""
        found = await kv.scan(bus.kv.status, f"{self.project}.*", ServiceStatus)
        return {v.value.service: v.value for v in found}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each platform process has used so far."""
        out: dict[str, float] = {}
        for name, proc in self.stack.procs.items():
            if proc.pid is not None and proc.alive():
                out[name] = pid_cpu_seconds(proc.pid)
        return out

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each platform process (VmRSS from /proc/<pid>/status)."""
        out: dict[str, float] = {}
        for name, proc in self.stack.procs.items():
            if proc.pid is None or not proc.alive():
                continue
            try:
                text = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1]) / 1024
        return out


def pid_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dockerd_pid() -> int | None:
    r = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(r[0]) if r else None


# ------------------------------------------------------------ baselines
def docker_run(
    run_id: str, image: str, env: Mapping[str, str], container_port: int = 8080
) -> tuple[str, int]:
    """`docker run -d` publishing on a chosen 127.0.0.1 port; (container id, port)."""
    port = free_port()
    argv = ["docker", "run", "-d", "--label", f"{BENCH_LABEL}={run_id}"]
    argv += ["-p", f"127.0.0.1:{port}:{container_port}"]
    for k, v in env.items():
        argv += ["-e", f"{k}={v}"]
    r = subprocess.run([*argv, image], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"docker run failed: {r.stderr.strip()}")
    return r.stdout.strip(), port


def docker_rm(*ids: str) -> None:
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def remove_baselines(run_id: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={run_id}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    docker_rm(*ids)
