"""Environment variables from env files and `--env NAME=VALUE` arguments. Pure, no I/O.

Env file format, one variable a line:

    # comments and blank lines are skipped
    NAME=value
    export NAME=value          ('export ' is allowed and ignored)
    NAME="value with spaces"   (one pair of surrounding quotes, " or ', is removed)
    NAME=                      (an empty value)

Everything after the first `=` is the value: there are no inline comments and
no escapes, as in `docker run --env-file`. A malformed line is an
`EnvFileError` naming the file and the line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTES = ("'", '"')


class EnvFileError(ValueError):
    """A malformed env file line or `--env` argument; the message is meant for the user."""


def _check_name(name: str, where: str) -> str:
    if not name:
        raise EnvFileError(f"{where}: the variable name before '=' is empty")
    if not NAME_RULE.fullmatch(name):
        raise EnvFileError(
            f"{where}: {name!r} is not a valid variable name (letters, digits and '_', "
            "not starting with a digit)"
        )
    return name


def unquote(value: str, where: str) -> str:
    """Remove one pair of matching surrounding quotes; a lone opening quote is an error."""
    if value[:1] in _QUOTES:
        quote = value[0]
        if len(value) < 2 or not value.endswith(quote):
            raise EnvFileError(f"{where}: the value opens with {quote} but does not end with it")
        return value[1:-1]
    return value


def parse_env_file(text: str, source: str = "env file") -> list[tuple[str, str]]:
    """`(name, value)` pairs in file order; a name given twice appears twice (the last wins)."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep:
            raise EnvFileError(f"{where}: expected NAME=VALUE, got {_shorten(line)!r}")
        pairs.append((_check_name(name.strip(), where), unquote(value.strip(), where)))
    return pairs


def parse_assignment(text: str) -> tuple[str, str]:
    """One `NAME=VALUE` command-line argument. The value is taken as is (the shell quotes)."""
    name, sep, value = text.partition("=")
    where = f"--env {_shorten(text)!r}"
    if not sep:
        raise EnvFileError(f"{where}: expected NAME=VALUE")
    return _check_name(name, where), value


def merge_env(*layers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later layers win; the order of first appearance is kept."""
    merged: dict[str, str] = {}
    for layer in layers:
        for name, value in layer:
            merged[name] = value
    return merged


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
