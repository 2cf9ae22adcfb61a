"""The `servicectl` command line: every command, option and help text.

Builds the argparse parser only; what the commands do is in `servicectl.cli`
and below, argument types are in `servicectl.argtypes`, and the shell
completion scripts are derived from this parser (`servicectl.completion`; an
argument marked with `completes(action, ...)` completes file or directory
names). Wrong arguments are reported on one line
(exit 2), never with a traceback.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from servicectl.argtypes import (
    COUNT,
    MB,
    PORT,
    STREAMS,
    assignment,
    int_in,
    seconds,
    variable,
)
from servicectl.config import DEFAULT_API
from servicectl.definitions import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_MEMORY_RESERVATION_MB,
    DEFAULT_PORT,
    DEFAULT_TAG,
)

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


SHELLS = ("bash", "zsh", "fish")
ENV_ACTIONS = ("list", "set", "unset")
COMPLETES = "servicectl_completes"  # attribute of an argparse action: "file" or "dir"


def completes(action: argparse.Action, kind: str) -> argparse.Action:
    """Mark an argument as a file ("file") or directory ("dir") name, for shell completion."""
    setattr(action, COMPLETES, kind)
    return action


def expand_shorthands(argv: Sequence[str]) -> list[str]:
    """`servicectl env NAME ...` is short for `servicectl env list NAME ...`."""
    args = list(argv)
    if len(args) > 1 and args[0] == "env" and args[1] not in (*ENV_ACTIONS, "-h", "--help"):
        args.insert(1, "list")
    return args


EPILOG = f"""\
A first deploy:
  servicectl login --api {DEFAULT_API}
  servicectl create hello
  servicectl push hello examples/hello --tag v1
  servicectl deploy hello --tag v1 --env GREETING=hi
  servicectl logs hello -f

Exit status: 0 ok, 1 failed (API, network, docker, deploy), 2 wrong arguments or
input (also when the API answers 400). Results go to stdout, progress and errors
to stderr; --json prints results for scripts. Shell completion: servicectl
completion bash|zsh|fish. See docs/CLI.md.
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

    def json_arg(parser: Parser, help: str) -> None:
        parser.add_argument("--json", action="store_true", help=help)

    def follow_args(parser: Parser, what: str = "the deploy") -> None:
        parser.add_argument(
            "--detach",
            action="store_true",
            help=f"send the change and return without waiting for {what}",
        )
        parser.add_argument(
            "--timeout",
            type=seconds,
            default=DEFAULT_TIMEOUT_S,
            metavar="S",
            help=f"give up waiting after S seconds (default {DEFAULT_TIMEOUT_S:g}; "
            f"{what} itself goes on)",
        )
        json_arg(parser, "print progress and the outcome as JSON lines")

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
    c = cmd("whoami", "show who the session token belongs to and until when it is valid")
    json_arg(c, "print user, project, API and expiry as JSON")
    c = cmd(
        "nats",
        "print how to follow the project's events and logs on NATS",
        "Prints the NATS URL, the session token to connect with and the inbox prefix and "
        "consumers the connection may use (as shell variables, or JSON). See docs/EVENTS.md.",
    )
    json_arg(c, "print the details as JSON")

    c = cmd(
        "ls",
        "list the project's services with their status and URL",
        "List the project's services: status (NOT SERVING when no revision serves), newest "
        "revision, serving revision, the newest revision's deployment (PENDING, IN_PROGRESS, "
        "COMPLETED or FAILED, with the reason below the table), running/desired tasks, URL.",
    )
    json_arg(c, "print each service's state as JSON")

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
        type=int_in(1, 3600, "interval"),
        metavar="S",
        help="seconds between health checks (5-300)",
    )
    json_arg(c, "print the new service's name and URL as JSON")

    c = cmd(
        "delete",
        "delete a service with its containers, route, images and logs",
        epilog="example:\n  servicectl delete hello --yes",
    )
    service_arg(c)
    c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    json_arg(c, "print the outcome (DELETED or DRAINING) as JSON")

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
    completes(
        c.add_argument(
            "dir", metavar="DIR", nargs="?", help="docker build context (with a Dockerfile)"
        ),
        "dir",
    )
    c.add_argument(
        "--tag", "-t", default=DEFAULT_TAG, metavar="T", help=f"image tag (default {DEFAULT_TAG})"
    )
    c.add_argument("--image", metavar="IMAGE", help="push this local image instead of building")
    completes(
        c.add_argument(
            "--file", "-f", metavar="F", help="Dockerfile to build with (default DIR/Dockerfile)"
        ),
        "file",
    )
    json_arg(c, "print the pushed reference and digest as JSON")

    c = cmd(
        "deploy",
        "deploy a new revision and wait until it serves",
        "Send a new revision of the service's definition and follow the deploy until the "
        "new revision serves (exit 0, prints the URL) or fails (exit 1, prints why and "
        "the task's last output; the previous revision keeps serving). Options not given "
        "keep the values of the revision it starts from: the serving one if the newest "
        "failed, else the newest (it says which); a first deploy starts from tag "
        f"{DEFAULT_TAG}, memory {DEFAULT_MEMORY_RESERVATION_MB}-{DEFAULT_MEMORY_LIMIT_MB} "
        f"MB, port {DEFAULT_PORT}. The environment is the current one with --env-file "
        "files and then --env values laid over it.",
        "examples:\n  servicectl deploy hello --tag v2\n"
        "  servicectl deploy hello --env-file prod.env --env DEBUG=0 --memory-limit 256",
    )
    service_arg(c)
    c.add_argument("--tag", "-t", metavar="T", help="image tag to run")
    c.add_argument(
        "--memory-reservation", type=MB, metavar="MB", help="memory reserved for the service (MB)"
    )
    c.add_argument(
        "--memory-limit", type=MB, metavar="MB", help="hard memory limit (MB); killed above it"
    )
    c.add_argument("--port", type=PORT, metavar="P", help="the port the service listens on")
    completes(
        c.add_argument(
            "--env-file",
            action="append",
            default=[],
            metavar="F",
            help="NAME=VALUE lines to set (repeatable; # comments, optional quotes)",
        ),
        "file",
    )
    c.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        type=assignment,
        metavar="NAME=VALUE",
        help="set a variable (repeatable; wins over --env-file)",
    )
    c.add_argument(
        "--unset-env",
        action="append",
        default=[],
        type=variable,
        metavar="NAME",
        help="remove a variable",
    )
    c.add_argument(
        "--clear-env",
        action="store_true",
        help="start from an empty environment instead of the current one",
    )
    follow_args(c)

    c = cmd("status", "show a service's status, tasks, health and recent events")
    service_arg(c)
    json_arg(c, "print the API's status view as JSON")
    c.add_argument(
        "--events",
        type=int_in(0, 1000, "events"),
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
        "-n",
        "--tail",
        type=COUNT,
        default=20,
        metavar="N",
        help="lines per stream (default 20; 0 with -f: only new lines)",
    )
    c.add_argument(
        "--streams",
        type=STREAMS,
        default=1,
        metavar="M",
        help="how many recent log streams (tasks) to show (default 1)",
    )
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    json_arg(c, "print each line as a JSON line (time, task, stream, n, message)")

    c = cmd("events", "show a service's events (deploys, tasks, health)")
    service_arg(c)
    c.add_argument(
        "-n", "--tail", type=COUNT, default=20, metavar="N", help="show the last N (default 20)"
    )
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    json_arg(c, "print each event as a JSON line, as the API sends it")

    c = cmd("revisions", "list a service's revisions (its definition history)")
    service_arg(c)
    c.add_argument("--env", action="store_true", help="also show each revision's environment")
    json_arg(c, "print the API's answer (and the serving revision) as JSON")

    c = cmd(
        "rollback",
        "deploy an earlier revision's definition again and wait until it serves",
        "Make an earlier revision's definition current again (as a new revision) and follow "
        "the deploy like `deploy`. Without --to: the revision that is serving, if the last "
        "deploy failed, else the one before the current.",
        "examples:\n  servicectl rollback hello\n  servicectl rollback hello --to 3",
    )
    service_arg(c)
    c.add_argument("--to", type=int_in(1, 1 << 30, "revision"), metavar="REV", help="revision")
    follow_args(c)

    _env_commands(cmd, service_arg, follow_args, json_arg)

    c = cmd(
        "health",
        "show or change a service's health check (no new revision)",
        "Show the health check, or change the parts given: the path P under the service's "
        "URL, the healthy status codes C, the interval S. It applies at once, without a "
        "new revision.",
        "examples:\n  servicectl health hello\n"
        "  servicectl health hello --path /healthz --codes 200-399",
    )
    service_arg(c)
    c.add_argument("--path", metavar="P", help="health check path under the URL, e.g. /healthz")
    c.add_argument("--codes", metavar="C", help="healthy status codes, e.g. 200 or 200-299,304")
    c.add_argument(
        "--interval",
        type=int_in(1, 3600, "interval"),
        metavar="S",
        help="seconds between health checks (5-300)",
    )
    json_arg(c, "print the resulting health check as JSON")

    c = cmd(
        "scale",
        "set how many tasks the service runs and wait until they run",
        "Set the number of tasks (no new revision) and wait until that many run, printing "
        "tasks as they start and stop.",
        "example:\n  servicectl scale hello 3",
    )
    service_arg(c)
    c.add_argument("count", metavar="N", type=int_in(0, 10_000, "N"), help="number of tasks")
    follow_args(c, "the change")

    c = cmd(
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "Print a completion script for the shell. Load it in the current shell, or install "
        "it where the shell looks for completions.",
        "examples:\n  source <(servicectl completion bash)       # in ~/.bashrc\n"
        '  servicectl completion zsh > "${fpath[1]}/_servicectl"\n'
        "  servicectl completion fish > ~/.config/fish/completions/servicectl.fish",
    )
    c.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")
    return p


def _env_commands(
    cmd: Callable[..., Parser],
    service_arg: Callable[[Parser], None],
    follow_args: Callable[[Parser], None],
    json_arg: Callable[[Parser, str], None],
) -> None:
    env = cmd(
        "env",
        "list a service's environment variables, or set and unset them",
        "List the variables of the revision changes build on (the serving one, unless the "
        "newest has not failed), values hidden unless --show; or make a new revision with "
        "variables set or removed and follow its deploy, like `servicectl deploy`. "
        "CONTEXT_ROOT and PORT are set by the platform and not listed.",
        "examples:\n  servicectl env hello\n  servicectl env hello --show > hello.env\n"
        "  servicectl env set hello GREETING=hi MODE=fast\n  servicectl env unset hello MODE",
    )
    env.usage = (
        "servicectl env [list] NAME [--show] [--json]\n"
        "       servicectl env set NAME NAME=VALUE [NAME=VALUE ...] [--detach] [--timeout S]\n"
        "       servicectl env unset NAME VAR [VAR ...] [--detach] [--timeout S]"
    )
    actions = env.add_subparsers(
        dest="env_command",
        metavar="ACTION",
        required=True,
        parser_class=Parser,
        prog=f"{PROG} env",  # not the usage above, which lists all three forms
    )
    c: Parser = actions.add_parser(
        "list", help="list the variables (the default: `servicectl env NAME`)"
    )
    service_arg(c)
    c.add_argument("--show", action="store_true", help="show the values (as NAME=VALUE lines)")
    json_arg(c, "print the variables as JSON")
    c = actions.add_parser("set", help="set variables: a new revision, deployed")
    service_arg(c)
    c.add_argument(
        "pairs", nargs="+", type=assignment, metavar="NAME=VALUE", help="variables to set"
    )
    follow_args(c)
    c = actions.add_parser("unset", help="remove variables: a new revision, deployed")
    service_arg(c)
    c.add_argument("variables", nargs="+", type=variable, metavar="VAR", help="variables")
    follow_args(c)
