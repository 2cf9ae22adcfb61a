"""Argument types of the `servicectl` command line: numbers in range, NAME=VALUE, variables. Pure.

Each one turns an argument's text into its value or raises
`argparse.ArgumentTypeError` with a message that names the rule, which
argparse prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from servicectl.envfile import NAME_RULE, EnvFileError, parse_assignment


def int_in(lo: int, hi: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number, got {text!r}"
            ) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be between {lo} and {hi}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def assignment(text: str) -> tuple[str, str]:
    try:
        return parse_assignment(text)
    except EnvFileError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def variable(text: str) -> str:
    if not NAME_RULE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a variable name (letters, digits and '_', not starting with a digit)"
        )
    return text


MB = int_in(1, 1 << 20, "memory (MB)")
PORT = int_in(1, 65535, "port")
COUNT = int_in(0, 10_000, "count")
STREAMS = int_in(1, 100, "streams")
