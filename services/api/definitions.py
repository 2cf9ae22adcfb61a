"""Turning a submitted service definition into a validated revision. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from services.api.bodies import EnvVarBody, ServiceDefinitionBody
from shared import names
from shared.clock import iso_now
from shared.models import EnvVar, ServiceRecord, TaskDefinition
from shared.rules import check_environment, check_memory, check_port, check_tag
from shared.settings import Settings


@dataclass(frozen=True)
class PlannedRevision:
    definition: TaskDefinition
    warnings: list[str]


def build_revision(
    settings: Settings,
    record: ServiceRecord,
    body: ServiceDefinitionBody,
    *,
    rolled_back_from: int | None = None,
    largest_node_mb: int | None = None,
) -> PlannedRevision:
    """Validate `body` and make it revision `record.revision + 1` of the service.

    `largest_node_mb`: the most any host can reserve for one task (the deployer's
    view of its nodes); the configured capacity when it is not known."""
    check_tag(body.container_tag)
    room = largest_node_mb if largest_node_mb else settings.capacity_mb
    check_memory(
        body.memory_reservation,
        body.memory_limit,
        max(settings.max_memory_mb, room) if largest_node_mb else settings.max_memory_mb,
        room,
    )
    check_port(body.container_port)
    env = [EnvVar(name=e.name, value=e.value) for e in body.environment]
    check_environment(env)
    warnings: list[str] = []
    context_root = names.deployment_path(record.project, record.name)
    given = {e.name: e.value for e in env}
    if "CONTEXT_ROOT" not in given:
        env.append(EnvVar(name="CONTEXT_ROOT", value=context_root))
    elif given["CONTEXT_ROOT"] != context_root:
        warnings.append(
            f"CONTEXT_ROOT is set to {given['CONTEXT_ROOT']!r} but the service is reached at "
            f"{context_root!r}: requests will not reach it unless it listens under "
            f"{context_root}"
        )
    if "PORT" not in given:
        env.append(EnvVar(name="PORT", value=str(body.container_port)))
    revision = record.revision + 1
    td = TaskDefinition(
        project=record.project,
        service=record.name,
        service_uid=record.uid,
        revision=revision,
        container_tag=body.container_tag,
        image=names.image_reference(
            settings.registry_addr, record.project, record.name, body.container_tag
        ),
        memory_reservation=body.memory_reservation,
        memory_limit=body.memory_limit,
        container_port=body.container_port,
        environment=env,
        created_at=iso_now(),
        rolled_back_from=rolled_back_from,
    )
    return PlannedRevision(td, warnings)


def body_of(td: TaskDefinition) -> ServiceDefinitionBody:
    """The definition a user would submit to get `td` again (injected variables dropped)."""
    context_root = names.deployment_path(td.project, td.service)
    env = [
        EnvVarBody(name=e.name, value=e.value)
        for e in td.environment
        if not (e.name == "CONTEXT_ROOT" and e.value == context_root)
        and not (e.name == "PORT" and e.value == str(td.container_port))
    ]
    return ServiceDefinitionBody(
        container_tag=td.container_tag,
        memory_reservation=td.memory_reservation,
        memory_limit=td.memory_limit,
        container_port=td.container_port,
        environment=env,
    )
