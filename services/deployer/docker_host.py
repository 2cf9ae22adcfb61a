"""Docker adapter for the deployer: the only module here that imports aiodocker.

Lists the platform's containers (by labels) as `Observed` tasks, pulls images
with the deployer's registry credential, creates and starts tasks, stops and
removes them, reads a dead task's last lines and streams container events.
Docker's errors become `DockerUnavailable` (try again) or `ImageNotFound` /
`StartFailed` (permanent: the user must act).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from services.deployer.model import ContainerState, Observed
from services.deployer.networks import free_subnet
from services.deployer.sockets import listening_ports
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


def _classify_pull_error(err: aiodocker.DockerError, image: str, service: str) -> Exception:
    text = str(err.message)
    lowered = text.lower()
    if "manifest unknown" in lowered or "not found" in lowered or "name unknown" in lowered:
        tag = image.rpartition(":")[2]
        return ImageNotFound(
            f"image {image} is not in the registry ({text.strip()}); push it first: "
            f"servicectl push {service} DIR --tag {tag} (or docker push with the service's "
            "credentials)"
        )
    return DockerUnavailable(f"cannot pull {image}: {text.strip()}")


def task_labels(settings: Settings, td: TaskDefinition, task_id: str) -> dict[str, str]:
    """The labels of a task's container: who it belongs to (found again by them)."""
    return {
        names.LABEL_INSTANCE: settings.instance,
        names.LABEL_PROJECT: td.project,
        names.LABEL_SERVICE: td.service,
        names.LABEL_SERVICE_UID: td.service_uid,
        names.LABEL_REVISION: str(td.revision),
        names.LABEL_TASK: task_id,
        names.LABEL_MEMORY_RESERVATION: str(td.memory_reservation),
        names.LABEL_MEMORY_LIMIT: str(td.memory_limit),
        names.LABEL_CONTAINER_PORT: str(td.container_port),
    }


def observed_from_labels(labels: dict[str, str], container_id: str) -> dict[str, Any]:
    """The parts of an `Observed` that its labels tell."""
    return {
        "task_id": labels.get(names.LABEL_TASK, container_id[:12]),
        "service_uid": labels.get(names.LABEL_SERVICE_UID, ""),
        "revision": _int_label(labels, names.LABEL_REVISION),
        "memory_reservation": _int_label(labels, names.LABEL_MEMORY_RESERVATION),
        "memory_limit": _int_label(labels, names.LABEL_MEMORY_LIMIT),
    }


class DockerHost:
    def __init__(self, docker: aiodocker.Docker, settings: Settings, registry_password: str):
        self.docker = docker
        self.settings = settings
        self._auth = {"username": names.DEPLOYER_REGISTRY_USER, "password": registry_password}
        self._networks: set[str] = set()  # known to exist
        self._network_locks: dict[str, asyncio.Lock] = {}

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
            problem = _classify_pull_error(err, td.image, td.service)
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

    # ------------------------------------------------------------ project networks
    async def ensure_network(self, project: str) -> str:
        """The project's network (made if missing, with a subnet of the platform's pool)."""
        name = names.project_network(self.settings.instance, project)
        if name in self._networks:
            return name
        lock = self._network_locks.setdefault(project, asyncio.Lock())
        async with lock:
            if name in self._networks:
                return name
            try:
                await self.docker.networks.get(name)
            except aiodocker.DockerError as err:
                if err.status != 404:
                    raise DockerUnavailable(f"cannot look up network {name}: {err}") from err
                await self._create_network(project, name)
            except (aiohttp.ClientError, OSError) as err:
                raise DockerUnavailable(f"cannot look up network {name}: {err}") from err
            self._networks.add(name)
        return name

    async def _create_network(self, project: str, name: str) -> None:
        try:
            existing = await self.docker.networks.list()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot list networks: {err}") from err
        used = [
            cfg.get("Subnet", "")
            for net in existing
            for cfg in ((net.get("IPAM") or {}).get("Config") or [])
        ]
        subnet = free_subnet(
            self.settings.task_network_pool, self.settings.task_network_prefix, used
        )
        if subnet is None:
            raise StartFailed(
                f"no free subnet left in {self.settings.task_network_pool} for project "
                f"{project}'s network; the operator must widen SERVICECTL_TASK_NETWORK_POOL"
            )
        config = {
            "Name": name,
            "Driver": "bridge",
            "CheckDuplicate": True,
            "IPAM": {"Config": [{"Subnet": subnet}]},
            "Options": {
                "com.docker.network.bridge.name": names.project_bridge(
                    self.settings.instance, project
                ),
                "com.docker.network.bridge.enable_icc": "true",
            },
            "Labels": {
                names.LABEL_INSTANCE: self.settings.instance,
                names.LABEL_PROJECT: project,
            },
        }
        try:
            await self.docker.networks.create(config)
            log.info("created network %s (%s) for project %s", name, subnet, project)
        except aiodocker.DockerError as err:
            if err.status == 409:
                return  # made meanwhile (another deployer, or a lost answer)
            raise DockerUnavailable(f"cannot create network {name}: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot create network {name}: {err}") from err

    async def remove_unused_networks(self, projects_in_use: set[str]) -> None:
        """Remove this instance's project networks that no project with tasks here needs."""
        try:
            found = await self.docker.networks.list(
                filters={"label": [instance_label(self.settings)]}
            )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot list networks: {err}") from err
        for net in found:
            project = (net.get("Labels") or {}).get(names.LABEL_PROJECT, "")
            if not project or project in projects_in_use:
                continue
            await self._remove_network(str(net.get("Name", "")), str(net["Id"]))

    async def _remove_network(self, name: str, network_id: str) -> None:
        try:
            network = await self.docker.networks.get(network_id)
            await network.delete()
            self._networks.discard(name)
            log.info("removed network %s: its project has no tasks left", name)
        except aiodocker.DockerError as err:
            if err.status == 404:
                self._networks.discard(name)
            elif err.status in (403, 409):
                log.debug("network %s still in use: %s", name, err)
            else:
                raise DockerUnavailable(f"cannot remove network {name}: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot remove network {name}: {err}") from err

    def container_config(self, td: TaskDefinition, task_id: str) -> dict[str, Any]:
        port = f"{td.container_port}/tcp"
        network = names.project_network(self.settings.instance, td.project)
        security = ["no-new-privileges"] if self.settings.task_no_new_privileges else []
        return {
            "Image": td.image,
            "Env": [f"{e.name}={e.value}" for e in td.environment],
            "Labels": task_labels(self.settings, td, task_id),
            "ExposedPorts": {port: {}},
            "HostConfig": {
                "Memory": td.memory_limit * MB,
                "MemorySwap": td.memory_limit * MB,
                "MemoryReservation": td.memory_reservation * MB,
                "PortBindings": {port: [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "no"},
                "NetworkMode": network,
                "PidsLimit": self.settings.task_pids_limit,
                "CapDrop": ["ALL"],
                "CapAdd": list(self.settings.task_capabilities),
                "SecurityOpt": security,
                # a tiny init as PID 1 forwards SIGTERM, so services stop promptly
                "Init": True,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "20m", "max-file": "3"}},
            },
            "NetworkingConfig": {"EndpointsConfig": {network: {}}},
        }

    async def create(self, td: TaskDefinition, task_id: str) -> str:
        await self.ensure_network(td.project)
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

    async def nodes(self) -> list[dict[str, Any]]:
        """This one host: what tasks may reserve here (the configured capacity) and do."""
        listing = await self.list_tasks()
        reserved = sum(t.memory_reservation for _, _, t in listing if t.live)
        return [
            {
                "name": socket.gethostname(),
                "address": "127.0.0.1",
                "state": "ready",
                "availability": "active",
                "memory_mb": self.settings.capacity_mb,
                "reserved_mb": reserved,
            }
        ]

    async def listening_ports(self, container_id: str) -> set[int]:
        """TCP ports the task listens on (its network namespace's sockets); empty if unknown."""
        details = await inspect(self.docker, container_id)
        pid = int(((details or {}).get("State") or {}).get("Pid") or 0)
        if not pid:
            return set()
        tables = []
        for name in ("tcp", "tcp6"):
            try:
                tables.append(await asyncio.to_thread(Path(f"/proc/{pid}/net/{name}").read_text))
            except OSError:
                continue
        return listening_ports(tables)

    async def last_lines(self, container_id: str, n: int = 10) -> list[str]:
        try:
            lines = await asyncio.wait_for(
                self.docker.containers.container(container_id).log(
                    stdout=True, stderr=True, tail=n
                ),
                2.0,
            )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError):
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
