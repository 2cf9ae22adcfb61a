"""Docker adapter for the deployer: the only module here that imports aiodocker.

Lists the platform's containers (by labels) as `Observed` tasks, pulls images
with the deployer's registry credential, creates and starts tasks, stops and
removes them, reads a dead task's last lines and streams container events.
Docker's errors become `DockerUnavailable` (try again) or `ImageNotFound` /
`StartFailed` (permanent: the user must act).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import aiohttp

from services.deployer.model import ContainerState, Observed
from shared import names
from shared.clock import parse_iso
from shared.docker import (
    DockerUnavailable,
    container_events,
    inspect,
    instance_label,
    list_containers,
)
from shared.models import TaskDefinition
from shared.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
_ZERO_TIME = "0001-01-01T00:00:00Z"


class ImageNotFound(Exception):
    """The image or tag does not exist in the registry."""


class StartFailed(Exception):
    """Docker refused to create or start the container."""


def _int_label(labels: dict[str, str], key: str) -> int:
    try:
        return int(labels.get(key, "0"))
    except ValueError:
        return 0


def _classify_pull_error(err: aiodocker.DockerError, image: str) -> Exception:
    text = str(err.message)
    lowered = text.lower()
    if "manifest unknown" in lowered or "not found" in lowered or "name unknown" in lowered:
        return ImageNotFound(
            f"image {image} is not in the registry ({text.strip()}); push it first "
            "with the credentials from view=docker"
        )
    return DockerUnavailable(f"cannot pull {image}: {text.strip()}")


class DockerHost:
    def __init__(self, docker: aiodocker.Docker, settings: Settings, registry_password: str):
        self.docker = docker
        self.settings = settings
        self._auth = {"username": names.DEPLOYER_REGISTRY_USER, "password": registry_password}

    # ------------------------------------------------------------ observe
    def _labels(self, project: str | None, service: str | None) -> list[str]:
        labels = [instance_label(self.settings)]
        if project is not None:
            labels.append(f"{names.LABEL_PROJECT}={project}")
        if service is not None:
            labels.append(f"{names.LABEL_SERVICE}={service}")
        return labels

    async def list_tasks(
        self, project: str | None = None, service: str | None = None
    ) -> list[tuple[str, str, Observed]]:
        """(project, service, task) for every platform container (running or not)."""
        raw = await list_containers(self.docker, self._labels(project, service))
        out: list[tuple[str, str, Observed]] = []
        for item in raw:
            labels: dict[str, str] = item.get("Labels") or {}
            state = str(item.get("State", "dead"))
            host_port = None
            for port in item.get("Ports") or []:
                if port.get("PublicPort") and port.get("IP") in ("127.0.0.1", None, ""):
                    host_port = int(port["PublicPort"])
                    break
            exit_code = None
            oom = False
            finished_at = None
            created = float(item.get("Created", 0))
            if state not in ("running", "created"):
                details = await inspect(self.docker, item["Id"])
                if details is None:
                    continue
                st = details.get("State", {})
                exit_code = st.get("ExitCode")
                oom = bool(st.get("OOMKilled"))
                fin = st.get("FinishedAt") or _ZERO_TIME
                finished_at = None if fin.startswith("0001") else parse_iso(fin)
            task = Observed(
                task_id=labels.get(names.LABEL_TASK, item["Id"][:12]),
                container_id=item["Id"],
                service_uid=labels.get(names.LABEL_SERVICE_UID, ""),
                revision=_int_label(labels, names.LABEL_REVISION),
                state=state if state in _STATES else "dead",
                created_at=created,
                memory_reservation=_int_label(labels, names.LABEL_MEMORY_RESERVATION),
                memory_limit=_int_label(labels, names.LABEL_MEMORY_LIMIT),
                host_port=host_port,
                exit_code=exit_code,
                oom_killed=oom,
                finished_at=finished_at,
            )
            out.append(
                (labels.get(names.LABEL_PROJECT, ""), labels.get(names.LABEL_SERVICE, ""), task)
            )
        return out

    # ------------------------------------------------------------ act
    async def pull(self, td: TaskDefinition) -> None:
        repo, _, tag = td.image.rpartition(":")
        try:
            await self.docker.images.pull(repo, tag=tag, auth=self._auth)
        except aiodocker.DockerError as err:
            problem = _classify_pull_error(err, td.image)
            if isinstance(problem, DockerUnavailable) and await self._have_image(td.image):
                log.warning("%s; using the local copy", problem)
                return
            raise problem from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot pull {td.image}: {err}") from err

    async def _have_image(self, image: str) -> bool:
        try:
            await self.docker.images.inspect(image)
            return True
        except aiodocker.DockerError:
            return False
        except (aiohttp.ClientError, OSError):
            return False

    def container_config(self, td: TaskDefinition, task_id: str) -> dict[str, Any]:
        port = f"{td.container_port}/tcp"
        return {
            "Image": td.image,
            "Env": [f"{e.name}={e.value}" for e in td.environment],
            "Labels": {
                names.LABEL_INSTANCE: self.settings.instance,
                names.LABEL_PROJECT: td.project,
                names.LABEL_SERVICE: td.service,
                names.LABEL_SERVICE_UID: td.service_uid,
                names.LABEL_REVISION: str(td.revision),
                names.LABEL_TASK: task_id,
                names.LABEL_MEMORY_RESERVATION: str(td.memory_reservation),
                names.LABEL_MEMORY_LIMIT: str(td.memory_limit),
                names.LABEL_CONTAINER_PORT: str(td.container_port),
            },
            "ExposedPorts": {port: {}},
            "HostConfig": {
                "Memory": td.memory_limit * MB,
                "MemorySwap": td.memory_limit * MB,
                "MemoryReservation": td.memory_reservation * MB,
                "PortBindings": {port: [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "no"},
                # a tiny init as PID 1 forwards SIGTERM, so services stop promptly
                "Init": True,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "20m", "max-file": "3"}},
            },
        }

    async def create(self, td: TaskDefinition, task_id: str) -> str:
        name = names.container_name(self.settings.instance, td.project, td.service, task_id)
        try:
            container = await self.docker.containers.create(
                self.container_config(td, task_id), name=name
            )
        except aiodocker.DockerError as err:
            if err.status in (400, 404, 409):
                raise StartFailed(f"docker refused to create the task: {err.message}") from err
            raise DockerUnavailable(f"cannot create container: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot create container: {err}") from err
        return str(container.id)

    async def start(self, container_id: str) -> None:
        try:
            await self.docker.containers.container(container_id).start()
        except aiodocker.DockerError as err:
            await self.remove(container_id)
            if err.status in (400, 404, 409, 500):
                raise StartFailed(f"docker could not start the task: {err.message}") from err
            raise DockerUnavailable(f"cannot start container: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot start container: {err}") from err

    async def stop(self, container_id: str) -> None:
        try:
            await self.docker.containers.container(container_id).stop(
                t=self.settings.stop_timeout_s,
                timeout=self.settings.stop_timeout_s + 30,
            )
        except aiodocker.DockerError as err:
            if err.status in (304, 404):
                return
            raise DockerUnavailable(f"cannot stop {container_id[:12]}: {err}") from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot stop {container_id[:12]}: {err}") from err

    async def remove(self, container_id: str) -> None:
        try:
            await self.docker.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as err:
            if err.status in (404, 409):
                return
            raise DockerUnavailable(f"cannot remove {container_id[:12]}: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot remove {container_id[:12]}: {err}") from err

    async def last_lines(self, container_id: str, n: int = 10) -> list[str]:
        try:
            lines = await self.docker.containers.container(container_id).log(
                stdout=True, stderr=True, tail=n
            )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError):
            return []
        text = "".join(lines)
        return [line for line in text.splitlines() if line.strip()][-n:]

    async def remove_images(self, project: str, service: str) -> None:
        """Remove the local copies of a service's images."""
        repo = f"{self.settings.registry_addr}/{names.image_repository(project, service)}"
        try:
            images = await self.docker.images.list(filters=json.dumps({"reference": [repo]}))
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
            log.warning("cannot list images of %s: %s", repo, err)
            return
        for image in images:
            for ref in image.get("RepoTags") or []:
                try:
                    await self.docker.images.delete(ref, force=True)
                except aiodocker.DockerError as err:
                    log.info("cannot remove image %s: %s", ref, err)

    async def events(self) -> AsyncIterator[tuple[str, str]]:
        """(action, service key or "") for every event of the platform's containers."""
        async for action, _cid, labels in container_events(self.docker, self.settings):
            project = labels.get(names.LABEL_PROJECT, "")
            service = labels.get(names.LABEL_SERVICE, "")
            yield action, names.service_key(project, service) if project and service else ""


_STATES: frozenset[ContainerState] = frozenset(
    {"created", "running", "paused", "restarting", "removing", "exited", "dead"}
)
