"""Docker engine plumbing shared by the deployer and the log collector.

Connecting with backoff, listing this platform's containers by label,
inspecting one, and following container events. aiodocker's and aiohttp's
errors become `DockerUnavailable` (try again later); a container that does not
exist is `None`, never an error. What each process does with containers lives
in its own adapter (`services/deployer/docker_host.py`,
`services/logs/docker_source.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import aiohttp
from aiodocker.jsonstream import json_stream_stream

from shared import names
from shared.settings import Settings

log = logging.getLogger(__name__)

ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError)


class DockerUnavailable(Exception):
    """The engine did not answer or dropped the connection; try again later."""


def client(url: str) -> aiodocker.Docker:
    """A client without aiohttp's default limit of 100 connections (one per log stream)."""
    if url.startswith("unix://"):
        connector = aiohttp.UnixConnector(url[len("unix://") :], limit=0)
        return aiodocker.Docker(url="unix://localhost", connector=connector)
    return aiodocker.Docker(url=url)


async def close(docker: aiodocker.Docker) -> None:
    connector = docker.connector
    await docker.close()
    if connector is not None and not connector.closed:
        await connector.close()


async def connect(settings: Settings, stop: asyncio.Event) -> aiodocker.Docker:
    """Connect, retrying with backoff until the engine answers or `stop` is set."""
    delay = 0.2
    while True:
        docker = client(settings.docker_url)
        try:
            await docker.version()
            return docker
        except ERRORS as err:
            await close(docker)
            log.warning(
                "Docker at %s not ready (%s); retrying in %.1fs", settings.docker_url, err, delay
            )
        try:
            await asyncio.wait_for(stop.wait(), delay)
            raise DockerUnavailable("stopped while connecting to Docker")
        except TimeoutError:
            pass
        delay = min(5.0, delay * 2)


def instance_label(settings: Settings) -> str:
    return f"{names.LABEL_INSTANCE}={settings.instance}"


async def list_containers(
    docker: aiodocker.Docker, labels: list[str], statuses: list[str] | None = None
) -> list[dict[str, Any]]:
    """`containers/json` (all states unless `statuses`) for containers with every label."""
    filters: dict[str, list[str]] = {"label": labels}
    if statuses:
        filters["status"] = statuses
    try:
        found = await docker.containers.list(all="1", filters=json.dumps(filters))
    except ERRORS as err:
        raise DockerUnavailable(f"cannot list containers: {err}") from err
    return [{k: c[k] for k in _LISTED if k in c} for c in found]


_LISTED = ("Id", "Names", "State", "Labels", "Ports", "Created", "Image")


@asynccontextmanager
async def raw_stream(
    docker: aiodocker.Docker, path: str, params: dict[str, str]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open streaming response of the engine (`events`, `containers/<id>/logs`).

    The one use of aiodocker's private `_query`: its public log and event calls
    decode and split what they read (log lines lose Docker's framing, events go
    through a broadcast task), while the collector resumes at exact byte
    positions and the deployer reacts to each event as it arrives."""
    async with docker._query(path, method="GET", params=params, timeout=None) as resp:
        yield resp


async def inspect(docker: aiodocker.Docker, container_id: str) -> dict[str, Any] | None:
    """A container's details; None once it is removed."""
    try:
        found: dict[str, Any] = await docker.containers.container(container_id).show()
        return found
    except aiodocker.DockerError as err:
        if err.status == 404:
            return None
        raise DockerUnavailable(f"cannot inspect {container_id[:12]}: {err}") from err
    except (aiohttp.ClientError, OSError) as err:
        raise DockerUnavailable(f"cannot inspect {container_id[:12]}: {err}") from err


async def container_events(
    docker: aiodocker.Docker, settings: Settings
) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    """(action, container id, labels) for every event of this instance's containers."""
    params = {"filters": json.dumps({"type": ["container"], "label": [instance_label(settings)]})}
    try:
        async with raw_stream(docker, "events", params) as resp:
            async for data in json_stream_stream(resp):
                actor = data.get("Actor") or {}
                action = str(data.get("Action") or data.get("status") or "")
                yield (
                    action.partition(":")[0],
                    str(actor.get("ID") or data.get("id") or ""),
                    dict(actor.get("Attributes") or {}),
                )
    except ERRORS as err:
        raise DockerUnavailable(f"docker event stream ended: {err}") from err
