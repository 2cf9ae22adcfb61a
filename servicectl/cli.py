"""The `servicectl` command: dispatch, and turning failures into exit codes.

Exit codes: 0 success; 1 the API, the network, docker or a deploy failed;
2 wrong arguments or input, whether the CLI or the API (400) noticed it (one
line on stderr, never a traceback); 130 interrupted. This is the only module
that reads `os.environ`, `sys.argv` and the real standard streams; everything
below receives them in a `Context`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from servicectl import commands, completion, deploying, environment, logs_and_events, patching
from servicectl.config import ConfigError
from servicectl.context import CommandError, Context, UsageError
from servicectl.definitions import Changes
from servicectl.envfile import EnvFileError, merge_env, parse_env_file
from servicectl.errors import AuthenticationFailed, BadRequest, ServicectlError
from servicectl.parser import PROG, build_parser, expand_shorthands

__all__ = ["build_parser", "changes_from", "env_sources", "main", "run"]


def read_env_file(name: str) -> list[tuple[str, str]]:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"--env-file {name}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--env-file {name}: not UTF-8 text") from None
    return parse_env_file(text, name)


def read_env_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    return [pair for name in paths for pair in read_env_file(name)]


def env_sources(args: argparse.Namespace) -> dict[str, str]:
    """How each variable of `deploy` was given (the last one wins), for error messages."""
    given: dict[str, str] = {}
    for name in args.env_file:
        for var, _ in read_env_file(name):
            given[var] = f"{var} (from --env-file {name})"
    for var, _ in args.env:
        given[var] = f"--env {var}"
    return given


def changes_from(args: argparse.Namespace) -> Changes:
    env = merge_env(read_env_files(args.env_file), args.env)
    return Changes(
        tag=args.tag,
        memory_reservation=args.memory_reservation,
        memory_limit=args.memory_limit,
        port=args.port,
        env=env,
        unset=tuple(args.unset_env),
        clear_env=args.clear_env,
    )


def command(args: argparse.Namespace, ctx: Context) -> Coroutine[Any, Any, int]:
    """The coroutine that carries out the parsed command."""
    a = args
    match a.command:
        case "login":
            return commands.login(ctx, a.api, a.user, a.project, a.password_stdin)
        case "logout":
            return commands.logout(ctx)
        case "whoami":
            return commands.whoami(ctx, a.json)
        case "nats":
            return commands.nats_info(ctx, a.json)
        case "ls":
            return commands.ls(ctx, a.json)
        case "create":
            return commands.create(
                ctx, a.name, a.health_path, a.health_codes, a.health_interval, a.json
            )
        case "delete":
            return commands.delete(ctx, a.name, a.yes, a.json)
        case "push":
            source = commands.push_source(a.dir, a.image, a.file)
            return commands.push_image(ctx, a.name, source, a.tag, a.json)
        case "deploy":
            return deploying.deploy(
                ctx,
                a.name,
                changes_from(a),
                detach=a.detach,
                timeout=a.timeout,
                as_json=a.json,
                env_sources=env_sources(a),
            )
        case "status":
            return commands.status(ctx, a.name, a.json, a.events)
        case "logs":
            return logs_and_events.logs(ctx, a.name, a.tail, a.streams, a.follow, a.json)
        case "events":
            return logs_and_events.events(ctx, a.name, a.tail, a.follow, a.json)
        case "revisions":
            return commands.revisions(ctx, a.name, a.json, a.env)
        case "rollback":
            return deploying.rollback(
                ctx, a.name, a.to, detach=a.detach, timeout=a.timeout, as_json=a.json
            )
        case "env":
            return _env_command(a, ctx)
        case "health":
            return patching.health(ctx, a.name, a.path, a.codes, a.interval, as_json=a.json)
        case "scale":
            return patching.scale(
                ctx, a.name, a.count, detach=a.detach, timeout=a.timeout, as_json=a.json
            )
        case "completion":
            return _print(ctx, completion.script(build_parser(), a.shell))
    raise UsageError(f"unknown command {a.command!r}")


def _env_command(a: argparse.Namespace, ctx: Context) -> Coroutine[Any, Any, int]:
    match a.env_command:
        case "list":
            return environment.env_list(ctx, a.name, show=a.show, as_json=a.json)
        case "set":
            return environment.env_set(
                ctx, a.name, a.pairs, detach=a.detach, timeout=a.timeout, as_json=a.json
            )
        case "unset":
            return environment.env_unset(
                ctx, a.name, a.variables, detach=a.detach, timeout=a.timeout, as_json=a.json
            )
    raise UsageError(f"unknown env action {a.env_command!r}")


async def _print(ctx: Context, text: str) -> int:
    ctx.say(text.rstrip("\n"))
    return 0


async def _stoppable(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`; SIGTERM cancels it like Ctrl-C does, so clean-ups (docker config) run."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        return await work
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run(argv: Sequence[str] | None, ctx: Context) -> int:
    """Parse and run; every expected failure is one `servicectl: ...` line and an exit code."""
    args = build_parser().parse_args(expand_shorthands(sys.argv[1:] if argv is None else argv))
    try:
        return asyncio.run(_stoppable(command(args, ctx)))
    except AuthenticationFailed as err:
        if args.command == "login":
            hint = ""
        elif "log in" in err.message:
            hint = " with `servicectl login`"
        else:
            hint = " (log in again: servicectl login)"
        ctx.progress(f"{PROG}: {err}{hint}")
        return 1
    except BadRequest as err:  # the API found the input wrong: like a usage error
        ctx.progress(f"{PROG}: {err}")
        return 2
    except CommandError as err:
        ctx.progress(f"{PROG}: {err.message}")
        return err.code
    except EnvFileError as err:
        ctx.progress(f"{PROG}: {err}")
        return 2
    except (ServicectlError, ConfigError) as err:
        ctx.progress(f"{PROG}: {err}")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    ctx = Context(env=dict(os.environ))
    try:
        return run(argv, ctx)
    except KeyboardInterrupt:
        ctx.progress("")
        return 130
    except asyncio.CancelledError:  # SIGTERM
        return 143
    except BrokenPipeError:
        # the reader went away (`servicectl logs x | head`): leave quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
