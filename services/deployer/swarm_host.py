"""Docker Swarm adapter for the deployer: tasks placed by Swarm across nodes (multi-host mode).

Each of the platform's tasks is a Swarm service of its own with one replica
and no restart policy, so the planner keeps the same per-task control as on one
engine: it starts a task (a service is created and Swarm places it by its
memory reservation), routes to it, drains it and stops it (the service is
removed) when it decides to, restarts crashed tasks with its own backoff, and
switches revisions blue/green with its own health checks. Swarm's rolling
update, which stops an old task as soon as the new one passes an exec
HEALTHCHECK, is never used.

A task is reached at `<node address>:<published port>` (host-mode publishing:
this kernel has no IPVS, so no ingress mesh or VIPs); its project's overlay
network (`endpoint_mode` dnsrr) connects it to its project's other tasks on any
node, and to nothing else. A task on a node that is down counts as lost: the
planner starts a replacement, which Swarm places on a node that is up.

Same interface as `DockerHost` (the reconciler does not know which one runs);
the only other module here that imports aiodocker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiodocker
import aiohttp

from services.deployer.docker_host import (
    ImageNotFound,
    StartFailed,
    observed_from_labels,
    task_labels,
)
from services.deployer.model import ContainerState, Observed
from services.deployer.networks import free_subnet
from shared import names
from shared.clock import parse_iso
from shared.docker import DockerUnavailable, instance_label
from shared.models import TaskDefinition
from shared.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
LINES_TIMEOUT_S = 2.0
POLL_S = 0.5  # Swarm's task states are read this often (its event stream has no task states)
_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError)

# Swarm task states -> what the planner sees
_PENDING = frozenset({"new", "allocated", "pending", "assigned", "accepted", "ready"})
_STARTING = frozenset({"preparing", "starting"})
_ENDED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})


def _state_of(task: Mapping[str, Any], node_up: bool) -> tuple[ContainerState, str, str]:
    """(state, error, pending reason) of the newest Swarm task of one of our services."""
    status = task.get("Status") or {}
    state = str(status.get("State", ""))
    err = str(status.get("Err") or "")
    if not node_up and state not in _ENDED:
        return "dead", "was lost with its node (the node is down or unreachable)", ""
    if state == "running":
        return "running", "", ""
    if state in _STARTING:
        return "created", "", ""
    if state in _PENDING:
        reason = err or str(status.get("Message") or "waiting for a node")
        return "pending", "", reason
    if state in ("rejected", "failed") and err and "exit" not in err:
        return "dead", f"could not be started: {err}", ""
    return "exited", "", ""


def _oom_killed(state: str, exit_code: object) -> bool:
    """Whether an ended task was killed by the kernel for its memory limit.

    Swarm's task status has no OOMKilled (only the node's engine knows), so this
    reads the exit: 137 is SIGKILL, and the platform never kills a task itself
    (it removes the task's service, which leaves no exit to observe), so a
    SIGKILL inside a memory limit is the OOM killer's (or someone's with a
    shell on the node).
    """
    return state == "exited" and exit_code == 137


def _published_port(task: Mapping[str, Any]) -> int | None:
    for port in (task.get("Status") or {}).get("PortStatus", {}).get("Ports") or []:
        if port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return None


class SwarmHost:
    def __init__(self, docker: aiodocker.Docker, settings: Settings, registry_password: str):
        self.docker = docker
        self.settings = settings
        self._auth = {"username": names.DEPLOYER_REGISTRY_USER, "password": registry_password}
        self._networks: set[str] = set()
        self._network_lock = asyncio.Lock()

    # ------------------------------------------------------------ observe
    async def _our_services(self) -> list[Mapping[str, Any]]:
        try:
            found: list[Mapping[str, Any]] = await self.docker.services.list(
                filters={"label": instance_label(self.settings)}
            )
        except _ERRORS as err:
            raise DockerUnavailable(f"cannot list swarm services: {err}") from err
        return found

    async def _nodes_up(self) -> dict[str, tuple[bool, str]]:
        """node id -> (ready, address)."""
        try:
            nodes = await self.docker.nodes.list()
        except _ERRORS as err:
            raise DockerUnavailable(f"cannot list swarm nodes: {err}") from err
        out: dict[str, tuple[bool, str]] = {}
        for node in nodes:
            status = node.get("Status") or {}
            out[str(node["ID"])] = (status.get("State") == "ready", str(status.get("Addr", "")))
        return out

    async def list_tasks(
        self, project: str | None = None, service: str | None = None
    ) -> list[tuple[str, str, Observed]]:
        services = await self._our_services()
        nodes = await self._nodes_up()
        try:
            tasks = await self.docker.tasks.list()
        except _ERRORS as err:
            raise DockerUnavailable(f"cannot list swarm tasks: {err}") from err
        newest: dict[str, Mapping[str, Any]] = {}
        for task in tasks:
            sid = str(task.get("ServiceID", ""))
            if sid not in newest or task.get("CreatedAt", "") > newest[sid].get("CreatedAt", ""):
                newest[sid] = task
        out: list[tuple[str, str, Observed]] = []
        for svc in services:
            labels: dict[str, str] = dict((svc.get("Spec") or {}).get("Labels") or {})
            p, s = labels.get(names.LABEL_PROJECT, ""), labels.get(names.LABEL_SERVICE, "")
            if (project is not None and p != project) or (service is not None and s != service):
                continue
            sid = str(svc["ID"])
            task = newest.get(sid, {})
            up, address = nodes.get(str(task.get("NodeID", "")), (True, ""))
            state, error, pending = _state_of(task, up) if task else ("pending", "", "queued")
            status = task.get("Status") or {}
            container = status.get("ContainerStatus") or {}
            exit_code = container.get("ExitCode")
            finished = None
            if state in ("exited", "dead") and status.get("Timestamp"):
                finished = parse_iso(str(status["Timestamp"]))
            out.append(
                (
                    p,
                    s,
                    Observed(
                        **observed_from_labels(labels, sid),
                        container_id=sid,
                        state=state,
                        created_at=parse_iso(str(svc.get("CreatedAt"))),
                        host_port=_published_port(task) if state == "running" else None,
                        exit_code=int(exit_code) if exit_code is not None else None,
                        oom_killed=_oom_killed(state, exit_code),
                        finished_at=finished,
                        address=address or "127.0.0.1",
                        log_id=str(container.get("ContainerID") or ""),
                        error=error,
                        pending_reason=pending,
                    ),
                )
            )
        return out

    async def listening_ports(self, _container_id: str) -> set[int]:
        return set()  # a remote node's sockets are not visible from here

    # ------------------------------------------------------------ networks
    async def ensure_network(self, project: str) -> str:
        """The project's overlay network across the swarm (made with a subnet of the pool)."""
        name = names.project_network(self.settings.instance, project)
        if name in self._networks:
            return name
        async with self._network_lock:
            try:
                existing = await self.docker.networks.list()
            except _ERRORS as err:
                raise DockerUnavailable(f"cannot list networks: {err}") from err
            if any(n.get("Name") == name for n in existing):
                self._networks.add(name)
                return name
            used = [
                cfg.get("Subnet", "")
                for n in existing
                for cfg in ((n.get("IPAM") or {}).get("Config") or [])
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
                "Driver": "overlay",
                "CheckDuplicate": True,
                "IPAM": {"Config": [{"Subnet": subnet}]},
                "Labels": {
                    names.LABEL_INSTANCE: self.settings.instance,
                    names.LABEL_PROJECT: project,
                },
            }
            try:
                await self.docker.networks.create(config)
                log.info("created overlay network %s (%s) for project %s", name, subnet, project)
            except aiodocker.DockerError as err:
                if err.status != 409:
                    raise DockerUnavailable(f"cannot create network {name}: {err}") from err
            except (aiohttp.ClientError, OSError) as err:
                raise DockerUnavailable(f"cannot create network {name}: {err}") from err
            self._networks.add(name)
        return name

    async def remove_unused_networks(self, projects_in_use: set[str]) -> None:
        try:
            found = await self.docker.networks.list(
                filters={"label": [instance_label(self.settings)], "driver": ["overlay"]}
            )
        except _ERRORS as err:
            raise DockerUnavailable(f"cannot list networks: {err}") from err
        for net in found:
            project = (net.get("Labels") or {}).get(names.LABEL_PROJECT, "")
            if not project or project in projects_in_use:
                continue
            try:
                await (await self.docker.networks.get(str(net["Id"]))).delete()
                self._networks.discard(str(net.get("Name")))
                log.info("removed network %s: its project has no tasks left", net.get("Name"))
            except aiodocker.DockerError as err:
                if err.status not in (403, 404, 409):
                    raise DockerUnavailable(f"cannot remove network: {err}") from err
            except (aiohttp.ClientError, OSError) as err:
                raise DockerUnavailable(f"cannot remove network: {err}") from err

    # ------------------------------------------------------------ act
    async def pull(self, td: TaskDefinition) -> None:
        """Nothing here: the node Swarm chooses pulls, with the credential sent along."""

    def service_spec(self, td: TaskDefinition, task_id: str) -> dict[str, Any]:
        network = names.project_network(self.settings.instance, td.project)
        labels = task_labels(self.settings, td, task_id)
        container_spec: dict[str, Any] = {
            "Image": td.image,
            "Env": {e.name: e.value for e in td.environment},
            "Labels": labels,
            "Init": True,
            "StopGracePeriod": self.settings.stop_timeout_s * 1_000_000_000,
            "CapabilityDrop": ["ALL"],
            "CapabilityAdd": list(self.settings.task_capabilities),
        }
        return {
            "task_template": {
                "ContainerSpec": container_spec,
                "Resources": {
                    "Limits": {
                        "MemoryBytes": td.memory_limit * MB,
                        "Pids": self.settings.task_pids_limit,
                    },
                    "Reservations": {"MemoryBytes": td.memory_reservation * MB},
                },
                "RestartPolicy": {"Condition": "none"},
                "LogDriver": {
                    "Name": "json-file",
                    "Options": {"max-size": "20m", "max-file": "3"},
                },
                "Networks": [{"Target": network}],
            },
            "name": names.container_name(self.settings.instance, td.project, td.service, task_id),
            "labels": labels,
            "mode": {"Replicated": {"Replicas": 1}},
            "endpoint_spec": {
                "Mode": "dnsrr",
                "Ports": [
                    {"Protocol": "tcp", "TargetPort": td.container_port, "PublishMode": "host"}
                ],
            },
        }

    async def create(self, td: TaskDefinition, task_id: str) -> str:
        await self.ensure_network(td.project)
        spec = self.service_spec(td, task_id)
        try:
            created = await self.docker.services.create(
                spec["task_template"],
                name=spec["name"],
                labels=spec["labels"],
                mode=spec["mode"],
                endpoint_spec=spec["endpoint_spec"],
                auth=self._auth,
                registry=self.settings.registry_addr,
            )
        except aiodocker.DockerError as err:
            if err.status in (400, 409):
                raise StartFailed(f"swarm refused the task: {err.message}") from err
            raise DockerUnavailable(f"cannot create swarm service: {err}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(f"cannot create swarm service: {err}") from err
        return str(created["ID"])

    async def start(self, _service_id: str) -> None:
        """Nothing here: Swarm starts the task once it is placed."""

    async def stop(self, service_id: str) -> None:
        """Stop a task: its service goes (Swarm stops the container with the grace period)."""
        await self.remove(service_id)

    async def remove(self, service_id: str) -> None:
        try:
            await self.docker.services.delete(service_id)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return
            raise DockerUnavailable(
                f"cannot remove swarm service {service_id[:12]}: {err}"
            ) from err
        except (aiohttp.ClientError, OSError) as err:
            raise DockerUnavailable(
                f"cannot remove swarm service {service_id[:12]}: {err}"
            ) from err

    async def last_lines(self, service_id: str, n: int = 10) -> list[str]:
        """The task's last lines, from its node through the manager (none if it cannot say
        within LINES_TIMEOUT_S: a node that is down never answers)."""
        try:
            logs = self.docker.services.logs(service_id, stdout=True, stderr=True, tail=str(n))
            lines: list[str] = await asyncio.wait_for(logs, LINES_TIMEOUT_S)  # type: ignore[arg-type]
        except (*_ERRORS, TypeError, TimeoutError):
            return []
        text = "".join(lines)
        return [line for line in text.splitlines() if line.strip()][-n:]

    async def remove_images(self, project: str, service: str) -> None:
        """Images stay on the nodes (prune them there); the registry's copies are deleted."""
        log.debug("images of %s.%s stay on the swarm's nodes", project, service)

    async def events(self) -> AsyncIterator[tuple[str, str]]:
        """(change, service key) whenever a task's state changes (polled: see `POLL_S`)."""
        seen: dict[str, tuple[str, int | None, str]] = {}
        while True:
            current: dict[str, tuple[str, int | None, str]] = {}
            keys: dict[str, str] = {}
            for p, s, t in await self.list_tasks():
                current[t.container_id] = (t.state, t.host_port, t.address)
                keys[t.container_id] = names.service_key(p, s)
            for sid, now in current.items():
                if seen.get(sid) != now:
                    yield ("die" if now[0] in ("exited", "dead") else "start"), keys[sid]
            for sid in set(seen) - set(current):
                yield "destroy", keys.get(sid, "")
            seen = current
            await asyncio.sleep(POLL_S)

    # ------------------------------------------------------------ nodes
    async def nodes(self) -> list[dict[str, Any]]:
        """Every node with its memory and what the platform's tasks reserve on it."""
        try:
            nodes = await self.docker.nodes.list()
            tasks = await self.docker.tasks.list(filters={"desired-state": "running"})
        except _ERRORS as err:
            raise DockerUnavailable(f"cannot list swarm nodes: {err}") from err
        ours = {str(s["ID"]) for s in await self._our_services()}
        reserved: dict[str, int] = {}
        for task in tasks:
            if str(task.get("ServiceID")) not in ours:
                continue
            res = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
            node_id = str(task.get("NodeID", ""))
            reserved[node_id] = reserved.get(node_id, 0) + int(res.get("MemoryBytes", 0)) // MB
        out = []
        for item in nodes:
            desc = item.get("Description") or {}
            status = item.get("Status") or {}
            out.append(
                {
                    "name": str(desc.get("Hostname", item["ID"])),
                    "address": str(status.get("Addr", "")),
                    "state": str(status.get("State", "")),
                    "availability": str((item.get("Spec") or {}).get("Availability", "")),
                    "memory_mb": int((desc.get("Resources") or {}).get("MemoryBytes", 0)) // MB,
                    "reserved_mb": reserved.get(str(item["ID"]), 0),
                }
            )
        return out


__all__ = ["ImageNotFound", "SwarmHost"]
