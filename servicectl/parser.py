"""The `servicectl` command line: every command, option and help text, and argument types.

Builds the argparse parser only; what the commands do is in `servicectl.cli`
and below. Wrong arguments are reported on one line (exit 2), never with a
traceback.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import NoReturn

from servicectl.config import DEFAULT_API
from servicectl.definitions import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_MEMORY_RESERVATION_MB,
    DEFAULT_PORT,
    DEFAULT_TAG,
)
from servicectl.envfile import EnvFileError, parse_assignment

PROG = "servicectl"
DEFAULT_TIMEOUT_S = 300.0


class _Formatter(argparse.HelpFormatter):
    """Fills paragraphs of one line; keeps paragraphs of several lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            if "\n" in para.strip("\n"):
                out.append(para)
            else:
                out.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(out)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: `servicectl deploy: <what is wrong> (see ... --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _int_in(lo: int, hi: int, what: str) -> Callable[[str], int]:
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    try:
        return parse_assignment(text)
    except EnvFileError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


_MB = _int_in(1, 1 << 20, "memory (MB)")
_PORT = _int_in(1, 65535, "port")
_COUNT = _int_in(1, 10_000, "count")

EPILOG = f"""\
A first deploy:
  servicectl login --api {DEFAULT_API}
  servicectl create hello
  servicectl push hello examples/hello --tag v1
  servicectl deploy hello --tag v1 --env GREETING=hi
  servicectl logs hello -f

Exit status: 0 ok, 1 failed (API, network, docker, deploy), 2 wrong arguments.
Results go to stdout, progress and errors to stderr. See docs/CLI.md.
"""


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description="Deploy and run HTTP services on a servicectl platform.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def cmd(name: str, help: str, description: str = "", epilog: str = "") -> Parser:
        parser: Parser = sub.add_parser(
            name,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
            epilog=epilog or None,
            formatter_class=_Formatter,
        )
        return parser

    def service_arg(parser: Parser) -> None:
        parser.add_argument("name", metavar="NAME", help="the service's name")

    def follow_args(parser: Parser) -> None:
        parser.add_argument(
            "--detach",
            action="store_true",
            help="send the update and return without waiting for the deploy",
        )
        parser.add_argument(
            "--timeout",
            type=_seconds,
            default=DEFAULT_TIMEOUT_S,
            metavar="S",
            help=f"give up waiting after S seconds (default {DEFAULT_TIMEOUT_S:g}; "
            "the deploy itself goes on)",
        )

    c = cmd(
        "login",
        "log in and store the session token",
        "Log in to a servicectl API and store the API URL and session token in "
        "$XDG_CONFIG_HOME/servicectl/config.json (~/.config/servicectl/config.json), "
        "readable only by you. Asks for what is not given.",
        "examples:\n  servicectl login\n"
        '  echo "$PASSWORD" | servicectl login --api http://api.example.org/servicectl-1 '
        "--user alice --project demo --password-stdin",
    )
    c.add_argument(
        "--api",
        metavar="URL",
        help=f"the API's base URL (default: $SERVICECTL_API or {DEFAULT_API})",
    )
    c.add_argument("--user", "-u", metavar="USER", help="user name (asked if not given)")
    c.add_argument("--project", "-p", metavar="PROJECT", help="project (asked if not given)")
    c.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    cmd("logout", "revoke the stored session token and forget it")
    cmd("whoami", "show who the session token belongs to and until when it is valid")

    c = cmd("ls", "list the project's services with their status and URL")
    c.add_argument("--json", action="store_true", help="print the API's list as JSON")

    c = cmd(
        "create",
        "create a service (deploy it later with push and deploy)",
        "Create a service. Its health check requests PATH under the service's URL every "
        "S seconds and counts the status codes C as healthy (default: the service's "
        "root path, 200-499, every 10 s).",
        "example:\n  servicectl create hello --health-path /healthz --health-codes 200",
    )
    service_arg(c)
    c.add_argument("--health-path", metavar="P", help="health check path, e.g. /healthz")
    c.add_argument(
        "--health-codes", metavar="C", help="healthy status codes, e.g. 200 or 200-299,304"
    )
    c.add_argument(
        "--health-interval",
        type=_int_in(1, 3600, "interval"),
        metavar="S",
        help="seconds between health checks (5-300)",
    )

    c = cmd(
        "delete",
        "delete a service with its containers, route, images and logs",
        epilog="example:\n  servicectl delete hello --yes",
    )
    service_arg(c)
    c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    c = cmd(
        "push",
        "build an image and push it to the service's repository",
        "Build DIR with `docker build` (or take a local --image) and push it to the "
        "service's own repository with `docker push`. The registry credentials are used "
        "through a temporary docker config that is deleted afterwards; your docker config "
        "never holds them. Prints the pushed image reference.",
        "examples:\n  servicectl push hello examples/hello --tag v2\n"
        "  servicectl push hello --image my-app:latest --tag v3",
    )
    service_arg(c)
    c.add_argument("dir", metavar="DIR", nargs="?", help="docker build context (with a Dockerfile)")
    c.add_argument(
        "--tag", "-t", default=DEFAULT_TAG, metavar="T", help=f"image tag (default {DEFAULT_TAG})"
    )
    c.add_argument("--image", metavar="IMAGE", help="push this local image instead of building")
    c.add_argument(
        "--file", "-f", metavar="F", help="Dockerfile to build with (default DIR/Dockerfile)"
    )

    c = cmd(
        "deploy",
        "deploy a new revision and wait until it serves",
        "Send a new revision of the service's definition and follow the deploy until the "
        "new revision serves (exit 0, prints the URL) or fails (exit 1, prints why and "
        "the task's last output; the previous revision keeps serving). Options not given "
        "keep the current revision's values; a first deploy starts from tag "
        f"{DEFAULT_TAG}, memory {DEFAULT_MEMORY_RESERVATION_MB}-{DEFAULT_MEMORY_LIMIT_MB} "
        f"MB, port {DEFAULT_PORT}. The environment is the current one with --env-file "
        "files and then --env values laid over it.",
        "examples:\n  servicectl deploy hello --tag v2\n"
        "  servicectl deploy hello --env-file prod.env --env DEBUG=0 --memory-limit 256",
    )
    service_arg(c)
    c.add_argument("--tag", "-t", metavar="T", help="image tag to run")
    c.add_argument(
        "--memory-reservation", type=_MB, metavar="MB", help="memory reserved for the service (MB)"
    )
    c.add_argument(
        "--memory-limit", type=_MB, metavar="MB", help="hard memory limit (MB); killed above it"
    )
    c.add_argument("--port", type=_PORT, metavar="P", help="the port the service listens on")
    c.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="F",
        help="NAME=VALUE lines to set (repeatable; # comments, optional quotes)",
    )
    c.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="set a variable (repeatable; wins over --env-file)",
    )
    c.add_argument(
        "--unset-env", action="append", default=[], metavar="NAME", help="remove a variable"
    )
    c.add_argument(
        "--clear-env",
        action="store_true",
        help="start from an empty environment instead of the current one",
    )
    follow_args(c)

    c = cmd("status", "show a service's status, tasks, health and recent events")
    service_arg(c)
    c.add_argument("--json", action="store_true", help="print the API's status view as JSON")
    c.add_argument(
        "--events",
        type=_int_in(0, 1000, "events"),
        default=10,
        metavar="N",
        help="show the last N events (default 10)",
    )

    c = cmd(
        "logs",
        "show a service's log lines",
        "Show the last lines of the service's most recent log streams (one per task), "
        "or follow them live with -f.",
        "examples:\n  servicectl logs hello -n 50\n  servicectl logs hello -f",
    )
    service_arg(c)
    c.add_argument(
        "-n", "--tail", type=_COUNT, default=20, metavar="N", help="lines per stream (default 20)"
    )
    c.add_argument(
        "--streams",
        type=_COUNT,
        default=1,
        metavar="M",
        help="how many recent log streams (tasks) to show (default 1)",
    )
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    c = cmd("events", "show a service's events (deploys, tasks, health)")
    service_arg(c)
    c.add_argument(
        "-n", "--tail", type=_COUNT, default=20, metavar="N", help="show the last N (default 20)"
    )
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new events")

    c = cmd("revisions", "list a service's revisions (its definition history)")
    service_arg(c)
    c.add_argument("--env", action="store_true", help="also show each revision's environment")
    c.add_argument("--json", action="store_true", help="print the API's answer as JSON")

    c = cmd(
        "rollback",
        "deploy an earlier revision's definition again and wait until it serves",
        "Make an earlier revision's definition current again (as a new revision) and follow "
        "the deploy like `deploy`. Without --to: the revision that is serving, if the last "
        "deploy failed, else the one before the current.",
        "examples:\n  servicectl rollback hello\n  servicectl rollback hello --to 3",
    )
    service_arg(c)
    c.add_argument("--to", type=_int_in(1, 1 << 30, "revision"), metavar="REV", help="revision")
    follow_args(c)
    return p
