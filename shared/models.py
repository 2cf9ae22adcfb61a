"""Records kept on NATS (KV values) and their one JSON codec.

Every value is a frozen, kw_only `msgspec.Struct`; fields added later always get
defaults so that old readers and old records keep working. Encoders and
decoders are built once here. Events live in `shared.events`.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar

import msgspec

_S = TypeVar("_S", bound=msgspec.Struct)


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base for every KV value."""


# ---------------------------------------------------------------- users and tokens
class UserRecord(Record, frozen=True, kw_only=True):
    username: str
    password_hash: str
    projects: list[str]
    created_at: str
    updated_at: str


class TokenRecord(Record, frozen=True, kw_only=True):
    username: str
    project: str
    issued_at: float
    expires_at: float


class RegistryCredential(Record, frozen=True, kw_only=True):
    """A Docker credential for one service's repository. Only a digest is kept."""

    project: str
    service: str
    service_uid: str
    password_digest: str
    issued_at: float
    expires_at: float


# ---------------------------------------------------------------- services
class HealthCheck(Record, frozen=True, kw_only=True):
    rel_path: str = "/"
    status_codes: str = "200-499"
    interval: int = 10


class EnvVar(Record, frozen=True, kw_only=True):
    name: str
    value: str


class TaskDefinition(Record, frozen=True, kw_only=True):
    """One immutable revision of a service's definition (like an ECS task definition)."""

    project: str
    service: str
    service_uid: str
    revision: int
    container_tag: str
    image: str
    memory_reservation: int
    memory_limit: int
    container_port: int
    environment: list[EnvVar]
    created_at: str
    rolled_back_from: int | None = None
    # the Idempotency-Key of the request that made it: a retry answers this revision
    request_id: str = ""


class ServiceRecord(Record, frozen=True, kw_only=True):
    """Desired state of a service. Written only by the api, with compare-and-set."""

    project: str
    name: str
    uid: str
    created_at: str
    updated_at: str
    health_check: HealthCheck | None = None
    revision: int = 0
    definition: TaskDefinition | None = None
    deleting: bool = False
    count: int = 1  # tasks wanted (0: none, the service stays)


class PathClaim(Record, frozen=True, kw_only=True):
    """Which service owns a deployment path `/<project>-<service>`, across all projects.

    Project names may contain '-', so `red1-ab` + `c` and `red1` + `ab-c` would
    share `/red1-ab-c`: the paths bucket lets only the first take it."""

    project: str
    service: str
    service_uid: str


# ---------------------------------------------------------------- observed state
TaskLastStatus = Literal["PROVISIONING", "PENDING", "RUNNING", "STOPPED"]
TaskHealth = Literal["INITIAL", "HEALTHY", "UNHEALTHY", "DRAINING", "UNUSED"]
DeploymentPhase = Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]


class TaskState(Record, frozen=True, kw_only=True):
    task_id: str
    container_id: str
    revision: int
    created_at: str
    desired_status: Literal["RUNNING", "STOPPED"]
    last_status: TaskLastStatus
    health: TaskHealth
    health_description: str = ""
    host: str = "127.0.0.1"
    host_port: int | None = None
    exit_code: int | None = None
    stopped_reason: str = ""
    # when the task's health clock started (its deploy deadline counts from it)
    started_at: float = 0.0


class DeploymentState(Record, frozen=True, kw_only=True):
    revision: int
    phase: DeploymentPhase
    reason: str = ""
    started_at: str
    updated_at: str


class ServiceStatus(Record, frozen=True, kw_only=True):
    """Observed state of a service, written only by the deployer that runs it."""

    project: str
    service: str
    service_uid: str
    host: str
    updated_at: str
    serving_revision: int = 0
    deployment: DeploymentState | None = None
    tasks: list[TaskState] = []
    restarts: int = 0
    failed_revisions: list[int] = []
    drained: bool = False


class Route(Record, frozen=True, kw_only=True):
    """Where the gateway sends a service's traffic. Written by the deployer."""

    project: str
    service: str
    upstreams: list[str]
    revision: int
    updated_at: str


class NodeInfo(Record, frozen=True, kw_only=True):
    """A host that runs tasks, as the deployer last saw it (one: the local engine)."""

    name: str
    address: str
    state: str  # ready, down, ...
    availability: str  # active, pause, drain
    memory_mb: int  # what tasks may reserve on it
    reserved_mb: int
    updated_at: str


class GatewayAck(Record, frozen=True, kw_only=True):
    """Written by the gateway once a route is live and removed upstreams are idle."""

    route_revision: int
    drained: bool
    applied_at: str


LogStreamName = Literal["stdout", "stderr"]

# One LOGS message carries at most this many payload bytes, unless a single
# line (up to SERVICECTL_LOG_MAX_LINE bytes) needs more on its own.
LOG_BATCH_BYTES: Final = 64 * 1024
LOG_BATCH_LINES: Final = 500


class LogLine(Record, frozen=True, kw_only=True):
    """One line of container output: the LOGS stream's message format before batches.

    Streams written by older collectors still hold such messages; readers take
    them through `decode_logs`, as a batch of one."""

    time: str
    stream: LogStreamName
    line: str
    n: int
    task: str


class LogEntry(Record, frozen=True, kw_only=True):
    """One line inside a `LogBatch`; its number is the batch's `n` plus its index."""

    time: str  # when Docker received it: RFC 3339, UTC, nanoseconds
    stream: LogStreamName
    line: str


class LogBatch(Record, frozen=True, kw_only=True):
    """Consecutive lines of one task's output: one message on the LOGS stream.

    The lines are numbered `n`, `n + 1`, ... (numbers count from 1 per task)."""

    task: str
    n: int
    lines: list[LogEntry]

    @property
    def last_n(self) -> int:
        return self.n + len(self.lines) - 1


class LogCursor(Record, frozen=True, kw_only=True):
    """How far the collector has published a container's output."""

    timestamp: str
    index: int
    line_no: int
    done: bool = False
    project: str = ""
    service: str = ""
    task: str = ""


# ---------------------------------------------------------------- codec
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(value: msgspec.Struct) -> bytes:
    return _encoder.encode(value)


def decode(cls: type[_S], data: bytes) -> _S:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    result: _S = dec.decode(data)
    return result


def decode_logs(data: bytes) -> LogBatch:
    """A LOGS message of either format as a batch; msgspec.DecodeError if it is neither."""
    try:
        return decode(LogBatch, data)
    except msgspec.ValidationError:
        old = decode(LogLine, data)  # one line, as stored by collectors before batches
    return LogBatch(
        task=old.task, n=old.n, lines=[LogEntry(time=old.time, stream=old.stream, line=old.line)]
    )
