"""The next service definition: the base revision's values with the user's changes. Pure.

`servicectl deploy` and `env set/unset` start from a base revision
(`choose_base`): the newest one, unless its deployment failed while an older
revision serves, then the serving one, so a change after a failed deploy is
not built on the failure; before the first deploy, the defaults below. The
options the user gave are laid over it and the result is sent as a whole
(the API wants every field). Variables the platform injects itself
(CONTEXT_ROOT and PORT, when they have the injected values) are not carried
over, so that changing the port moves PORT too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from servicectl.models import EnvVar, Revision, Revisions, ServiceDefinition, Status
from servicectl.states import NewestDeployment, newest_deployment

DEFAULT_TAG = "latest"
DEFAULT_MEMORY_RESERVATION_MB = 64
DEFAULT_MEMORY_LIMIT_MB = 128
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class Changes:
    """What the user asked to change; None means 'keep the current value'."""

    tag: str | None = None
    memory_reservation: int | None = None
    memory_limit: int | None = None
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    unset: Sequence[str] = ()
    clear_env: bool = False


@dataclass(frozen=True)
class Base:
    """The revision a new definition is built on, and why that one."""

    revision: Revision | None  # None: nothing deployed yet, the defaults
    serving: bool = False  # it is the serving revision
    newest: NewestDeployment | None = None  # the newest revision's deployment
    skipped: bool = False  # the newest revision failed and is not the base

    @property
    def number(self) -> int:
        return self.revision.revision if self.revision is not None else 0


def choose_base(revs: Revisions, status: Status) -> Base:
    """The newest revision, unless it failed and an older one serves: then the serving one."""
    newest = revs.current()
    state = newest_deployment(status)
    if newest is None:
        return Base(None)
    serving = status.serving_revision
    if state is not None and state.failed and 0 < serving != newest.revision:
        found = next((r for r in revs.revisions if r.revision == serving), None)
        if found is not None:
            return Base(found, serving=True, newest=state, skipped=True)
    return Base(newest, serving=newest.revision == serving, newest=state)


def describe_base(base: Base) -> str:
    """'from serving revision 11', 'from revision 13, the newest; nothing serves yet', ..."""
    if base.revision is None:
        return "first deploy, from the defaults"
    if base.serving:
        return f"from serving revision {base.number}"
    if base.newest is not None and base.newest.failed:
        return f"from revision {base.number}, the newest, which failed; nothing serves yet"
    return f"from revision {base.number}, the newest"


def base_note(base: Base) -> str | None:
    """A line about the newest revision's failure when the base is not it (else None)."""
    newest = base.newest
    if not base.skipped or newest is None:
        return None
    reason = f": {newest.reason}" if newest.reason else ""
    return (
        f"revision {newest.revision} (the newest) failed{reason}; "
        f"building on serving revision {base.number} instead"
    )


def user_environment(rev: Revision, context_root: str) -> list[EnvVar]:
    """The revision's environment without the variables the platform injected."""
    return [
        e
        for e in rev.environment
        if not (e.name == "CONTEXT_ROOT" and e.value == context_root)
        and not (e.name == "PORT" and e.value == str(rev.container_port))
    ]


def unset_but_missing(base: Base, changes: Changes, context_root: str) -> list[str]:
    """The variables `changes` would unset that the base revision does not have."""
    rev = base.revision
    have = {e.name for e in user_environment(rev, context_root)} if rev is not None else set()
    return [name for name in changes.unset if name not in have]


def next_definition(
    current: Revision | None, changes: Changes, context_root: str
) -> ServiceDefinition:
    """Merge `changes` onto `current` (or onto the defaults when there is no revision yet).

    If only one memory value is given and it conflicts with the kept other one,
    the kept one follows it (a limit below the reservation lowers the
    reservation; a reservation above the limit raises the limit). Two given
    values are sent as they are, for the API to judge.
    """
    if current is None:
        tag, reservation, limit, port = (
            DEFAULT_TAG,
            DEFAULT_MEMORY_RESERVATION_MB,
            DEFAULT_MEMORY_LIMIT_MB,
            DEFAULT_PORT,
        )
        env: dict[str, str] = {}
    else:
        tag = current.container_tag or _tag_of(current.container_image) or DEFAULT_TAG
        reservation = current.container_memory_reservation
        limit = current.container_memory_limit
        port = current.container_port
        env = {e.name: e.value for e in user_environment(current, context_root)}
    if changes.clear_env:
        env = {}
    for name in changes.unset:
        env.pop(name, None)
    env.update(changes.env)

    if changes.memory_reservation is not None and changes.memory_limit is not None:
        reservation, limit = changes.memory_reservation, changes.memory_limit
    elif changes.memory_limit is not None:
        limit = changes.memory_limit
        reservation = min(reservation, limit)
    elif changes.memory_reservation is not None:
        reservation = changes.memory_reservation
        limit = max(limit, reservation)

    return ServiceDefinition(
        container_tag=changes.tag if changes.tag is not None else tag,
        memory_reservation=reservation,
        memory_limit=limit,
        container_port=changes.port if changes.port is not None else port,
        environment=[EnvVar(name=k, value=v) for k, v in env.items()],
    )


def _tag_of(image: str) -> str:
    """The tag of `host:port/repo/name:tag` ('' when there is none)."""
    last = image.rsplit("/", 1)[-1]
    return last.rpartition(":")[2] if ":" in last else ""


def describe_changes(
    current: Revision | None, new: ServiceDefinition, context_root: str
) -> list[str]:
    """Human lines saying what differs between the base revision `current` and `new`."""
    if current is None:
        return ["first deploy"]
    old = next_definition(current, Changes(), context_root)
    out: list[str] = []
    if old.container_tag != new.container_tag:
        out.append(f"tag {old.container_tag} -> {new.container_tag}")
    if (old.memory_reservation, old.memory_limit) != (new.memory_reservation, new.memory_limit):
        out.append(
            f"memory {old.memory_reservation}-{old.memory_limit} MB -> "
            f"{new.memory_reservation}-{new.memory_limit} MB"
        )
    if old.container_port != new.container_port:
        out.append(f"port {old.container_port} -> {new.container_port}")
    old_env = {e.name: e.value for e in old.environment}
    new_env = {e.name: e.value for e in new.environment}
    for name in new_env:
        if name not in old_env:
            out.append(f"+env {name}")
        elif old_env[name] != new_env[name]:
            out.append(f"~env {name}")
    out.extend(f"-env {name}" for name in old_env if name not in new_env)
    return out or ["no changes (a new revision of the same definition)"]
