"""What the REST API sends and accepts, as the client sees it: lenient msgspec structs.

These are the client's own types, decoded from the API's JSON, not the
platform's internal records: unknown fields are ignored and every field a
server might omit has a default, so that a newer or older server still
decodes. Request bodies (`ServiceDefinition`, `HealthCheck`) are encoded
exactly as the API expects. This module does no I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every type here."""


# ---------------------------------------------------------------- auth
class Token(Wire, frozen=True, kw_only=True):
    """A new session token, as `POST /auth/tokens` answers."""

    token: str
    expires_at: str = ""
    username: str = ""
    project: str = ""


class TokenInfo(Wire, frozen=True, kw_only=True):
    """Who a session token belongs to (`GET /auth/tokens/current`)."""

    username: str
    project: str
    expires_at: str = ""


class NatsHistory(Wire, frozen=True, kw_only=True):
    stream: str
    consumer: str
    filter: str


class NatsDetails(Wire, frozen=True, kw_only=True):
    """How to follow the project on NATS (`GET /auth/nats`)."""

    url: str
    inbox_prefix: str
    expires_at: str = ""
    live: dict[str, str] = {}
    history: dict[str, NatsHistory] = {}


# ---------------------------------------------------------------- services
class Link(Wire, frozen=True, kw_only=True):
    href: str
    rel: str


class ServiceSummary(Wire, frozen=True, kw_only=True):
    """One service as listed: its name and its links (`self`, `deployment`)."""

    name: str
    links: list[Link] = []

    @property
    def url(self) -> str:
        """Where the service is served (the `deployment` link), or '' if there is none."""
        for link in self.links:
            if link.rel == "deployment":
                return link.href
        return ""

    @property
    def context_root(self) -> str:
        """The path the service must listen under: `/<project>-<name>`, the last part of its URL.

        Only the last path segment counts: a gateway published under a prefix
        (`https://example.org/apps/demo-web`) still gives its services
        CONTEXT_ROOT `/demo-web`.
        """
        path = urlsplit(self.url).path.rstrip("/") if self.url else ""
        return "/" + path.rsplit("/", 1)[-1] if path else ""


class HealthCheck(Wire, frozen=True, kw_only=True):
    rel_path: str = "/"
    status_codes: str = "200-499"
    interval: int = 10


class EnvVar(Wire, frozen=True, kw_only=True):
    name: str
    value: str


class ServiceDefinition(Wire, rename="kebab", frozen=True, kw_only=True):
    """The body of `PUT /services/<name>`: what one revision runs."""

    container_tag: str
    memory_reservation: int
    memory_limit: int
    container_port: int
    environment: list[EnvVar] = []


class TaskDefinition(Wire, frozen=True, kw_only=True):
    name: str = ""
    revision: int = 0
    status: str = ""
    container_image: str = ""
    container_memory_reservation: int = 0
    container_memory_limit: int = 0
    container_port: int = 0
    container_tag: str = ""


class Revision(TaskDefinition, frozen=True, kw_only=True):
    """One stored revision of a service's definition."""

    created_at: str = ""
    environment: list[EnvVar] = []
    rolled_back_from: int | None = None


class Revisions(Wire, frozen=True, kw_only=True):
    name: str
    revision: int = 0
    revisions: list[Revision] = []

    def current(self) -> Revision | None:
        """The revision the service should run, or None before its first deploy."""
        for rev in self.revisions:
            if rev.revision == self.revision:
                return rev
        return None


class UpdateResult(ServiceSummary, frozen=True, kw_only=True):
    """The answer to an update or a rollback: the new revision."""

    revision: int
    task_definition: Revision = msgspec.field(default_factory=Revision)
    warnings: list[str] = []


class DeleteResult(Wire, frozen=True, kw_only=True):
    name: str
    status: str = ""


class Task(Wire, frozen=True, kw_only=True):
    task_name: str
    created_at: str = ""
    desired_status: str = ""
    last_status: str = ""
    health: str = ""
    task_definition: TaskDefinition = msgspec.field(default_factory=TaskDefinition)
    exit_code: int | None = None
    stopped_reason: str = ""


class Target(Wire, frozen=True, kw_only=True):
    target: str
    port: int | None = None
    health: str = ""
    description: str = ""


class TargetHealth(Wire, frozen=True, kw_only=True):
    health_check_path: str = ""
    interval: int = 0
    status_codes: str = ""
    targets: list[Target] = []


class Deployment(Wire, frozen=True, kw_only=True):
    """The deployer's view of the latest deployment: PENDING, IN_PROGRESS, COMPLETED, FAILED."""

    revision: int
    status: str
    reason: str = ""
    started_at: str = ""
    updated_at: str = ""


class Event(Wire, frozen=True, kw_only=True):
    """An event, from the status view or live from the events websocket.

    The status view sends `created_at`, `message` and `type`; the websocket
    sends the full event, whose extra fields (revision, reason, last lines ...)
    depend on its type and default to empty here.
    """

    type: str = ""
    message: str = ""
    created_at: str = ""
    revision: int = 0
    reason: str = ""
    rolled_back_to: int = 0
    last_lines: list[str] = []
    task: str = ""
    seq: int = 0  # where it is stored (live events only): a follow resumes `after=<seq>`


class Status(Wire, frozen=True, kw_only=True):
    service_status: str = ""
    count_desired: int = 0
    count_running: int = 0
    count_pending: int = 0
    revision: int = 0
    serving_revision: int = 0
    restarts: int = 0
    tasks: list[Task] = []
    events: list[Event] = []
    target_health: TargetHealth = msgspec.field(default_factory=TargetHealth)
    deployment: Deployment | None = None


class ServiceView(ServiceSummary, frozen=True, kw_only=True):
    """`GET /services/<name>`: the service, its links and its status."""

    status: Status = msgspec.field(default_factory=Status)


class DockerCredentials(Wire, frozen=True, kw_only=True):
    """Registry credentials scoped to one service's repository (`?view=docker`)."""

    repo_uri: str
    proxy_endpoint: str
    user: str
    password: str = msgspec.field(default="")
    expires_at: str = ""

    def __repr__(self) -> str:  # never print the password by accident
        return f"DockerCredentials(repo_uri={self.repo_uri!r}, user={self.user!r}, password=***)"


# ---------------------------------------------------------------- logs
class LogEvent(Wire, frozen=True, kw_only=True):
    time: str = ""
    message: str = ""
    stream: str = ""  # stdout or stderr
    n: int = 0  # the line's number within its task (0: not sent)


class LogStream(Wire, frozen=True, kw_only=True):
    stream_name: str
    log_events: list[LogEvent] = []


class Logs(Wire, frozen=True, kw_only=True):
    """`?view=logs`: the last lines of the most recent log streams (one per task)."""

    logs: list[LogStream] = []


class LogLine(Wire, frozen=True, kw_only=True):
    """One line from the logs websocket: its task (the log stream), time and text."""

    time: str = ""
    message: str = ""
    task: str = ""
    stream: str = ""  # stdout or stderr
    n: int = 0  # the line's number within its task
    seq: int = 0  # where it is stored: a follow resumes `after=<seq>:<n>`
    line: str = ""  # older name of `message`
    stream_name: str = ""  # older name of `task`

    @property
    def text(self) -> str:
        return self.message or self.line

    @property
    def source(self) -> str:
        return self.stream_name or self.task
