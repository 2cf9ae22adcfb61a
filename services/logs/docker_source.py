"""Docker adapter for the collector: the only module here that imports aiodocker.

Lists this instance's containers, inspects one, streams container events and
a container's raw log stream (bytes, multiplexed; `frames` parses them). Every
library or connection error becomes `DockerUnavailable` (try again later); a
container that does not exist is `None` or an empty stream, never an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import aiodocker
import aiohttp

from services.logs.discovery import ContainerInfo
from shared import docker as shared_docker
from shared.docker import DockerUnavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

_READ_BYTES = 256 * 1024


class LogsUnreadable(Exception):
    """The container's logging driver does not let its output be read back: nothing to collect."""


@dataclass(frozen=True, slots=True)
class ContainerState:
    live: bool  # may still write output
    tty: bool


class DockerSource:
    def __init__(self, docker: aiodocker.Docker, settings: Settings) -> None:
        self.docker = docker
        self.settings = settings
        self._label = shared_docker.instance_label(settings)

    @classmethod
    async def connect(cls, settings: Settings, stop: asyncio.Event) -> DockerSource:
        """Connect, retrying with backoff until the engine answers or `stop` is set."""
        return cls(await shared_docker.connect(settings, stop), settings)

    async def close(self) -> None:
        await shared_docker.close(self.docker)

    async def containers(self) -> list[ContainerInfo]:
        """Every container of this instance, in any state."""
        raw = await shared_docker.list_containers(self.docker, [self._label])
        return [
            ContainerInfo(
                id=str(item["Id"]),
                state=str(item.get("State", "")),
                labels=dict(item.get("Labels") or {}),
            )
            for item in raw
        ]

    async def state(self, container_id: str) -> ContainerState | None:
        """Whether the container may still write output; None once it is removed."""
        found = await shared_docker.inspect(self.docker, container_id)
        if found is None:
            return None
        st = found.get("State") or {}
        live = bool(st.get("Running") or st.get("Restarting") or st.get("Paused"))
        return ContainerState(live=live, tty=bool((found.get("Config") or {}).get("Tty")))

    async def events(self) -> AsyncIterator[tuple[str, ContainerInfo]]:
        """(action, container) for every event of this instance's containers, as they happen."""
        async for action, cid, labels in shared_docker.container_events(self.docker, self.settings):
            yield action, ContainerInfo(id=cid, state="", labels=labels)

    async def logs(
        self, container_id: str, *, since: str | None, follow: bool, idle: Callable[[], float]
    ) -> AsyncGenerator[bytes, None]:
        """The raw log stream from `since` on (inclusive); b"" after `idle()` seconds of silence.

        Each chunk holds whatever had arrived (up to 256 KiB), so a reader that
        falls behind gets larger chunks, not more of them.

        With `follow` the stream lasts until the container stops; the caller
        decides then whether it really has.
        """
        params = {
            "follow": "1" if follow else "0",
            "stdout": "1",
            "stderr": "1",
            "timestamps": "1",
        }
        if since is not None:
            params["since"] = since
        try:
            async with shared_docker.raw_stream(
                self.docker, f"containers/{container_id}/logs", params
            ) as response:
                content = response.content
                while True:
                    try:
                        data = await asyncio.wait_for(content.readany(), idle())
                    except TimeoutError:
                        yield b""
                        continue
                    if not data:
                        return
                    while len(data) < _READ_BYTES:
                        more = content.read_nowait(_READ_BYTES - len(data))
                        if not more:
                            break
                        data += more
                    yield data
        except aiodocker.DockerError as err:
            if err.status == 404:
                return
            if err.status in (400, 501) and "does not support reading" in str(err.message):
                raise LogsUnreadable(str(err.message)) from err
            raise DockerUnavailable(f"cannot read logs of {container_id[:12]}: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"log stream of {container_id[:12]} broke: {err}") from err
