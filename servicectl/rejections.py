"""A 400 of the API in the words the user typed: the flag instead of the API's field name. Pure.

The API names the fields of the body it refused (`memory-limit must be at
most 4096 (MB), got 5000`). The CLI built that body from a base revision and
the flags given; `explain` puts the flag that chose each value in place of the
field name (a value the merge moved to follow another flag is that flag's),
and for a value nobody typed says where it came from and how to change it.
No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from servicectl.definitions import Changes
from servicectl.models import ServiceDefinition

FIELD_FLAGS: Mapping[str, str] = {
    "container-tag": "--tag T",
    "memory-reservation": "--memory-reservation MB",
    "memory-limit": "--memory-limit MB",
    "container-port": "--port P",
}
HEALTH_CHECK_FIELDS = ("rel_path", "status_codes", "interval")

_FIELD = re.compile(r"(?<![-\w])(container-tag|memory-reservation|memory-limit|container-port)\b")
_ENV_VALUE = re.compile(r"environment\[(\d+)\]\.value of \w+")
_ENV_NAME = re.compile(r"environment\[(\d+)\]\.name(?: '[^']*')?")
_ENV_ITEM = re.compile(r"environment\[(\d+)\]")


@dataclass(frozen=True)
class Sources:
    """Who chose each value of a definition the CLI sent."""

    service: str
    base: str  # where the values nobody typed come from: "revision 11", "the defaults"
    fields: Mapping[str, str] = field(default_factory=dict)  # API field -> flag ("--port")
    env: Mapping[str, str] = field(default_factory=dict)  # variable -> "--env A", "--env-file F"


def sources(
    service: str,
    base: str,
    kept: ServiceDefinition,
    sent: ServiceDefinition,
    changes: Changes,
    env: Mapping[str, str],
) -> Sources:
    """The flag behind each field of `sent`, built from `kept` (the base's values) by `changes`.

    `env` says how each variable the user set was given."""
    fields: dict[str, str] = {}
    if changes.tag is not None:
        fields["container-tag"] = "--tag"
    if changes.port is not None:
        fields["container-port"] = "--port"
    if changes.memory_reservation is not None:
        fields["memory-reservation"] = "--memory-reservation"
        if changes.memory_limit is None and sent.memory_limit != kept.memory_limit:
            fields["memory-limit"] = "--memory-reservation"  # the limit followed it up
    if changes.memory_limit is not None:
        fields["memory-limit"] = "--memory-limit"
        if (
            changes.memory_reservation is None
            and sent.memory_reservation != kept.memory_reservation
        ):
            fields["memory-reservation"] = "--memory-limit"  # the reservation followed it down
    return Sources(service, base, fields, dict(env))


def explain(message: str, sent: ServiceDefinition, src: Sources) -> str:
    """The API's message with flags for fields; a hint for values kept from the base."""
    kept: list[str] = []

    def variable(index: str) -> str:
        i = int(index)
        if i >= len(sent.environment):
            return f"environment[{i}]"
        name = sent.environment[i].name
        given = src.env.get(name)
        return given if given else f"{name} (kept from {src.base})"

    text = _ENV_VALUE.sub(lambda m: f"the value of {variable(m.group(1))}", message)
    text = _ENV_NAME.sub(lambda m: f"the name of {variable(m.group(1))}", text)
    text = _ENV_ITEM.sub(lambda m: variable(m.group(1)), text)

    def flag(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in src.fields:
            return src.fields[name]
        if name not in kept:
            kept.append(name)
        return name

    text = _FIELD.sub(flag, text)
    for name in kept:
        text += (
            f" ({name} is kept from {src.base}; change it with "
            f"`servicectl deploy {src.service} {FIELD_FLAGS[name]}`)"
        )
    return text


def explain_health_check(message: str, flags: Mapping[str, str]) -> str:
    """`health_check.rel_path must ...` -> `--path must ...`, for the flags given in `flags`."""
    for name in HEALTH_CHECK_FIELDS:
        if name in flags:
            message = message.replace(f"health_check.{name}", flags[name])
    return message
