"""A service's state as the CLI shows it: what serves, and how the newest revision fared. Pure.

The status view says which revision the gateway routes to (`serving_revision`)
and how the deployer's latest deployment went (`deployment`), which can still
be of an older revision while the newest waits for the deployer. `ls`,
`status` and their `--json` show what this module derives from it, so that a
failed newest revision, or a service that nothing serves, never reads as fine.
No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from servicectl.models import Status

NOT_SERVING = "NOT SERVING"
PENDING = "PENDING"
FAILED = "FAILED"
COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class NewestDeployment:
    """The deployment of the service's newest revision: PENDING, IN_PROGRESS, COMPLETED, FAILED."""

    revision: int
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass(frozen=True)
class ServiceState:
    word: str  # ACTIVE, INACTIVE, DRAINING, or NOT SERVING (revisions, but none serves)
    revision: int
    serving_revision: int
    newest: NewestDeployment | None  # None before the first deploy

    @property
    def serving(self) -> bool:
        return self.serving_revision > 0


def newest_deployment(status: Status) -> NewestDeployment | None:
    """How the newest revision's deployment stands; PENDING until the deployer takes it up."""
    if status.revision == 0:
        return None
    d = status.deployment
    if d is not None and d.revision == status.revision:
        return NewestDeployment(d.revision, d.status or PENDING, d.reason)
    if d is None and status.serving_revision == status.revision:
        return NewestDeployment(status.revision, COMPLETED)  # a server without `deployment`
    return NewestDeployment(status.revision, PENDING)


def service_state(status: Status) -> ServiceState:
    word = status.service_status or "UNKNOWN"
    if word == "ACTIVE" and status.revision > 0 and status.serving_revision == 0:
        word = NOT_SERVING
    return ServiceState(word, status.revision, status.serving_revision, newest_deployment(status))


# The deployer's advice for a missing image speaks the API's language (`view=docker`);
# the CLI says the command instead.
_API_PUSH_ADVICE = re.compile(r";?\s*push it first[^;]*?view=docker[^;]*")
_MISSING_IMAGE = re.compile(r"image \S+?:([A-Za-z0-9_][A-Za-z0-9_.-]*) is not in the registry")


def missing_image_tag(reason: str) -> str | None:
    """The tag of the image a failure says is not in the registry, or None."""
    if "is not in the registry" not in reason:
        return None
    m = _MISSING_IMAGE.search(reason)
    return m.group(1) if m else "TAG"


def without_api_advice(reason: str) -> str:
    """A server's reason without advice in the API's terms (`... from view=docker`)."""
    return _API_PUSH_ADVICE.sub("", reason)


def push_hint(name: str, tag: str) -> str:
    return f"servicectl push {name} DIR --tag {tag}"


def in_cli_words(reason: str, name: str) -> str:
    """A server's reason with API-level advice replaced by the CLI command that does it."""
    tag = missing_image_tag(reason)
    if tag is None or "view=docker" not in reason:
        return reason
    return f"{without_api_advice(reason)}; push it first: {push_hint(name, tag)}"
