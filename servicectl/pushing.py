"""`servicectl push`: build (or take) an image and push it with the service's own credentials.

Drives the stock `docker` CLI. The registry login lives in a temporary
DOCKER_CONFIG directory that exists only while the push runs and is removed
afterwards (after `docker logout`), whatever happens; the user's own docker
config is used for the build and never receives the credentials. Docker's
progress goes to stderr; the pushed reference is the result.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from servicectl.context import CommandError
from servicectl.models import DockerCredentials

_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
TAIL_LINES = 15


@dataclass(frozen=True)
class Pushed:
    reference: str
    digest: str


@dataclass(frozen=True)
class Source:
    """Either a build context directory (with an optional Dockerfile path) or a local image."""

    context: Path | None = None
    dockerfile: Path | None = None
    image: str | None = None


class Docker:
    """Runs docker CLI commands, streaming their output to `show` line by line."""

    def __init__(self, executable: str, show: Callable[[str], None]) -> None:
        self.executable = executable
        self.show = show

    async def run(
        self,
        args: Sequence[str],
        *,
        config: Path | None = None,
        stdin: str | None = None,
        echo: bool = True,
    ) -> tuple[int, list[str]]:
        argv = [self.executable, *(["--config", str(config)] if config else []), *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as err:
            raise CommandError(f"cannot run {self.executable}: {err.strerror}") from None
        assert proc.stdout is not None
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        lines: list[str] = []
        try:
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                lines.append(line)
                if echo and line:
                    self.show(f"    {line}")
            code = await proc.wait()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        return code, lines if code == 0 else list(tail)


def _failure(step: str, code: int, lines: Sequence[str]) -> CommandError:
    last = next((line for line in reversed(lines) if line.strip()), "")
    return CommandError(f"{step} failed (exit {code})" + (f": {last.strip()}" if last else ""))


async def push(
    docker: Docker,
    creds: DockerCredentials,
    source: Source,
    tag: str,
    step: Callable[[str], None],
) -> Pushed:
    """Build or tag, log in, push, log out; the temporary docker config never outlives this."""
    reference = f"{creds.repo_uri}:{tag}"
    if source.image is not None:
        step(f"Tagging {source.image} as {reference}")
        code, lines = await docker.run(["tag", source.image, reference], echo=False)
        if code != 0:
            raise _failure("docker tag", code, lines)
    else:
        assert source.context is not None
        step(f"Building {source.context} as {reference}")
        args = ["build", "--tag", reference]
        if source.dockerfile is not None:
            args += ["--file", str(source.dockerfile)]
        code, lines = await docker.run([*args, str(source.context)])
        if code != 0:
            raise _failure("docker build", code, lines)

    private = Path(tempfile.mkdtemp(prefix="servicectl-docker-"))
    try:
        step(f"Logging in to {creds.proxy_endpoint} as {creds.user} (temporary docker config)")
        code, lines = await docker.run(
            ["login", "--username", creds.user, "--password-stdin", creds.proxy_endpoint],
            config=private,
            stdin=creds.password + "\n",
            echo=False,
        )
        if code != 0:
            raise _failure("docker login", code, lines)
        step(f"Pushing {reference}")
        code, lines = await docker.run(["push", reference], config=private)
        if code != 0:
            raise _failure("docker push", code, lines)
        digest = next((m.group(1) for line in lines if (m := _DIGEST.search(line))), "")
    finally:
        try:
            await docker.run(["logout", creds.proxy_endpoint], config=private, echo=False)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    return Pushed(reference, digest)


def find_docker() -> str:
    found = shutil.which("docker")
    if found is None:
        raise CommandError("the docker CLI is not installed (or not on PATH); push needs it")
    return found
