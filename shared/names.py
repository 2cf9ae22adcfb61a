"""Every name on the bus and on Docker objects, built in one place.

Subjects, streams, KV buckets and keys, consumer names and container labels are
constructed here and nowhere else, so that a rename is one edit and readers and
writers cannot disagree. This module does no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Final

# ---------------------------------------------------------------- KV buckets
BUCKET_USERS: Final = "servicectl_users"
BUCKET_TOKENS: Final = "servicectl_tokens"
BUCKET_SERVICES: Final = "servicectl_services"
BUCKET_REVISIONS: Final = "servicectl_revisions"
BUCKET_STATUS: Final = "servicectl_status"
BUCKET_ROUTES: Final = "servicectl_routes"
BUCKET_GATEWAY: Final = "servicectl_gateway"
BUCKET_REGISTRY_CREDS: Final = "servicectl_registry_creds"
BUCKET_LOG_CURSORS: Final = "servicectl_log_cursors"
BUCKET_PATHS: Final = "servicectl_paths"  # deployment path -> the service that owns it
BUCKET_NODES: Final = "servicectl_nodes"  # the hosts that run tasks, by name

# ---------------------------------------------------------------- streams
STREAM_EVENTS: Final = "SERVICECTL_EVENTS"
STREAM_LOGS: Final = "SERVICECTL_LOGS"

_EVENTS_PREFIX: Final = "servicectl.events"
_LOGS_PREFIX: Final = "servicectl.logs"


def service_key(project: str, service: str) -> str:
    """KV key of a service in the services, status, routes and gateway buckets."""
    return f"{project}.{service}"


def split_service_key(key: str) -> tuple[str, str]:
    project, _, service = key.partition(".")
    return project, service


def revision_key(project: str, service: str, revision: int) -> str:
    return f"{project}.{service}.{revision}"


def revisions_of_service(project: str, service: str) -> str:
    """KV watch pattern for every revision of one service."""
    return f"{project}.{service}.*"


def services_of_project(project: str) -> str:
    """KV watch pattern for every service of one project."""
    return f"{project}.*"


def user_key(username: str) -> str:
    return username


def token_key(token_digest: str) -> str:
    return token_digest


def kv_stream(bucket: str) -> str:
    """The JetStream stream that holds a KV bucket."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, pattern: str) -> str:
    """The subject (or pattern) under which a KV bucket stores the keys matching `pattern`."""
    return f"$KV.{bucket}.{pattern}"


def kv_changes(bucket: str) -> str:
    """Core NATS subject on which every put, delete and purge of a KV bucket is published."""
    return kv_subject(bucket, ">")


def kv_key_of_subject(bucket: str, subject: str) -> str:
    """The key a `kv_changes` message is about."""
    return subject[len(bucket) + 5 :]  # after "$KV.<bucket>."


def registry_user(project: str, service: str, cred_id: str) -> str:
    """The Docker user name of a registry credential; also its KV key.

    Project names and service names cannot contain '.', so the three parts can
    be recovered with `split_registry_user`.
    """
    return f"{project}.{service}.{cred_id}"


def split_registry_user(user: str) -> tuple[str, str, str] | None:
    parts = user.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def registry_creds_of_service(project: str, service: str) -> str:
    return f"{project}.{service}.*"


def log_cursor_key(container_id: str) -> str:
    return container_id


# ---------------------------------------------------------------- subjects
def events_subject(project: str, service: str) -> str:
    return f"{_EVENTS_PREFIX}.{project}.{service}"


def events_of_project(project: str) -> str:
    return f"{_EVENTS_PREFIX}.{project}.>"


EVENTS_ALL: Final = f"{_EVENTS_PREFIX}.>"


def logs_subject(project: str, service: str, task: str) -> str:
    return f"{_LOGS_PREFIX}.{project}.{service}.{task}"


def logs_of_service(project: str, service: str) -> str:
    return f"{_LOGS_PREFIX}.{project}.{service}.*"


def logs_of_project(project: str) -> str:
    return f"{_LOGS_PREFIX}.{project}.>"


LOGS_ALL: Final = f"{_LOGS_PREFIX}.>"


def task_of_logs_subject(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def direct_get_subject(stream: str) -> str:
    """JetStream's direct-get API subject for a stream (batch reads)."""
    return f"$JS.API.DIRECT.GET.{stream}"


def log_message_id(container_id: str, timestamp: str, index: int, lines: int = 1) -> str:
    """Nats-Msg-Id of a LOGS message: its last line's Docker timestamp and index, and its size.

    JetStream drops a second copy within its duplicate window. A message of one
    line has no size suffix (the format of collectors before batches)."""
    ident = f"{container_id[:24]}:{timestamp}:{index}"
    return ident if lines == 1 else f"{ident}:{lines}"


# ---------------------------------------------------------------- docker
LABEL_PREFIX: Final = "org.servicectl"
LABEL_INSTANCE: Final = f"{LABEL_PREFIX}.instance"
LABEL_PROJECT: Final = f"{LABEL_PREFIX}.project"
LABEL_SERVICE: Final = f"{LABEL_PREFIX}.service"
LABEL_SERVICE_UID: Final = f"{LABEL_PREFIX}.service-uid"
LABEL_REVISION: Final = f"{LABEL_PREFIX}.revision"
LABEL_TASK: Final = f"{LABEL_PREFIX}.task"
LABEL_MEMORY_RESERVATION: Final = f"{LABEL_PREFIX}.memory-reservation-mb"
LABEL_MEMORY_LIMIT: Final = f"{LABEL_PREFIX}.memory-limit-mb"
LABEL_CONTAINER_PORT: Final = f"{LABEL_PREFIX}.container-port"


def project_network(instance: str, project: str) -> str:
    """The Docker network that a project's tasks share (and no other project's)."""
    return f"servicectl-{instance}-{project}"


TASK_BRIDGE_PREFIX: Final = "sctl"


def project_bridge(instance: str, project: str) -> str:
    """The Linux bridge of a project's network: `sctl` + a hash (interface names <= 15)."""
    digest = hashlib.sha256(f"{instance}/{project}".encode()).hexdigest()[:11]
    return f"{TASK_BRIDGE_PREFIX}{digest}"


def container_name(instance: str, project: str, service: str, task: str) -> str:
    return f"servicectl-{instance}-{project}-{service}-{task}"


def image_repository(project: str, service: str) -> str:
    """Repository path inside the registry (no host)."""
    return f"{project}/{service}"


def image_reference(registry: str, project: str, service: str, tag: str) -> str:
    return f"{registry}/{project}/{service}:{tag}"


def deployment_path(project: str, service: str) -> str:
    """The path a service is served under, also given to it as CONTEXT_ROOT."""
    return f"/{project}-{service}"


def path_key(project: str, service: str) -> str:
    """KV key of a deployment path in the paths bucket (unique across projects)."""
    return f"{project}-{service}"


# ---------------------------------------------------------------- registry
REGISTRY_SERVICE: Final = "servicectl-registry"
REGISTRY_ISSUER: Final = "servicectl-api"
DEPLOYER_REGISTRY_USER: Final = "platform.deployer"
