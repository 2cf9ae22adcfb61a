"""Docker adapter for the collector: the only module here that imports aiodocker.

Lists this instance's containers, inspects one, streams container events and
a container's raw log stream (bytes, multiplexed; `frames` parses them). Every
library or connection error becomes `DockerUnavailable` (try again later); a
container that does not exist is `None` or an empty stream, never an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
from aiodocker.jsonstream import json_stream_stream

from services.logs.discovery import ContainerInfo
from shared import names
from shared.settings import Settings

log = logging.getLogger(__name__)

_READ_BYTES = 256 * 1024


class DockerUnavailable(Exception):
    """The engine did not answer or dropped the connection; try again later."""


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
        self._label = f"{names.LABEL_INSTANCE}={settings.instance}"

    @classmethod
    async def connect(cls, settings: Settings, stop: asyncio.Event) -> DockerSource:
        """Connect, retrying with backoff until the engine answers or `stop` is set."""
        delay = 0.2
        while True:
            source = cls(_client(settings.docker_url), settings)
            try:
                await source.docker.version()
                return source
            except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
                await source.close()
                log.warning(
                    "Docker at %s not ready (%s); retrying in %.1fs",
                    settings.docker_url,
                    err,
                    delay,
                )
            try:
                await asyncio.wait_for(stop.wait(), delay)
                raise DockerUnavailable("stopped while connecting to Docker")
            except TimeoutError:
                pass
            delay = min(5.0, delay * 2)

    async def close(self) -> None:
        connector = self.docker.connector
        await self.docker.close()
        if connector is not None and not connector.closed:
            await connector.close()

    async def containers(self) -> list[ContainerInfo]:
        """Every container of this instance, in any state."""
        try:
            raw = await self.docker._query_json(
                "containers/json",
                method="GET",
                params={"all": "1", "filters": json.dumps({"label": [self._label]})},
            )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot list containers: {err}") from err
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
        try:
            found: dict[str, Any] = await self.docker.containers.container(container_id).show()
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise DockerUnavailable(f"cannot inspect {container_id[:12]}: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot inspect {container_id[:12]}: {err}") from err
        st = found.get("State") or {}
        live = bool(st.get("Running") or st.get("Restarting") or st.get("Paused"))
        return ContainerState(live=live, tty=bool((found.get("Config") or {}).get("Tty")))

    async def events(self) -> AsyncIterator[tuple[str, ContainerInfo]]:
        """(action, container) for every event of this instance's containers, as they happen."""
        params = {"filters": json.dumps({"type": ["container"], "label": [self._label]})}
        try:
            async with self.docker._query(
                "events", method="GET", params=params, timeout=None
            ) as response:
                async for data in json_stream_stream(response):
                    actor = data.get("Actor") or {}
                    action = str(data.get("Action") or data.get("status") or "")
                    yield (
                        action.partition(":")[0],
                        ContainerInfo(
                            id=str(actor.get("ID") or data.get("id") or ""),
                            state="",
                            labels=dict(actor.get("Attributes") or {}),
                        ),
                    )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"docker event stream ended: {err}") from err

    async def logs(
        self, container_id: str, *, since: str | None, follow: bool, idle: float
    ) -> AsyncGenerator[bytes, None]:
        """The raw log stream from `since` on (inclusive); b"" after `idle` seconds of silence.

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
            async with self.docker._query(
                f"containers/{container_id}/logs", method="GET", params=params, timeout=None
            ) as response:
                content = response.content
                while True:
                    try:
                        data = await asyncio.wait_for(content.readany(), idle)
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


def _client(url: str) -> aiodocker.Docker:
    """A client without aiohttp's default limit of 100 connections: one per followed container."""
    if url.startswith("unix://"):
        connector = aiohttp.UnixConnector(url[len("unix://") :], limit=0)
        return aiodocker.Docker(url="unix://localhost", connector=connector)
    return aiodocker.Docker(url=url)
