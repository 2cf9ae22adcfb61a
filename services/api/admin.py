"""`servicectl-admin`: operator commands that act on the platform's state directly.

    servicectl-admin add-user USERNAME --project PROJECT   (password: first line of stdin)
    servicectl-admin list-users
    servicectl-admin remove-user USERNAME
    servicectl-admin nodes

Connects to NATS (SERVICECTL_NATS_URL) like the services do. Users live in the
users bucket with an scrypt hash of their password.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services.api import secrets
from services.api.users import UserDirectory
from shared import bus as busmod
from shared import kv, natsserver
from shared.bus import BusError, Conflict
from shared.clock import iso_now
from shared.models import NodeInfo, UserRecord
from shared.rules import RuleViolation, check_password, check_project, check_username
from shared.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="servicectl-admin", description="Operator commands for a servicectl platform."
    )
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser(
        "add-user",
        help="create a user, or update an existing user's password; adds the project",
        description="Create a user (or update the password of an existing one) and give it "
        "access to PROJECT. The password is read from the first line of standard input.",
    )
    add.add_argument("username")
    add.add_argument("--project", required=True, help="project the user may log in to")
    sub.add_parser("list-users", help="list users and their projects")
    sub.add_parser(
        "nodes",
        help="list the hosts that run tasks, with the memory reserved and free on each",
        description="The hosts as the deployer last saw them: one (this engine) unless the "
        "platform runs on a Docker Swarm (SERVICECTL_ENGINE=swarm; docs/MULTIHOST.md).",
    )
    rm = sub.add_parser("remove-user", help="delete a user and revoke their session tokens")
    rm.add_argument("username")
    return p


async def _connect(settings: Settings) -> UserDirectory:
    stop = asyncio.Event()
    try:
        bus = await asyncio.wait_for(
            busmod.connect(settings, name="servicectl-admin", stop=stop), 15
        )
    except TimeoutError:
        stop.set()
        raise BusError(
            f"cannot reach NATS at {settings.nats_url}; is the platform running?"
        ) from None
    return UserDirectory(bus)


async def add_user(settings: Settings, username: str, project: str, password: str) -> str:
    check_username(username)
    check_project(project)
    check_password(password)
    hashed = await asyncio.to_thread(secrets.hash_password, password)
    users = await _connect(settings)
    # the project's NATS account (a reload keeps connections): its users may connect to NATS
    natsserver.ensure_project(settings, project)
    try:
        while True:
            found = await users.get(username)
            now = iso_now()
            if found is None:
                try:
                    await users.create(
                        UserRecord(
                            username=username,
                            password_hash=hashed,
                            projects=[project],
                            created_at=now,
                            updated_at=now,
                        )
                    )
                except Conflict:
                    continue
                return f"created user {username} in project {project}"
            old = found.value
            projects = old.projects if project in old.projects else [*old.projects, project]
            try:
                await users.update(
                    UserRecord(
                        username=username,
                        password_hash=hashed,
                        projects=projects,
                        created_at=old.created_at,
                        updated_at=now,
                    ),
                    found.revision,
                )
            except Conflict:
                continue
            same = await asyncio.to_thread(secrets.verify_password, password, old.password_hash)
            if same:
                return f"updated user {username}: projects {', '.join(projects)}"
            revoked = await users.revoke_tokens(username)
            return (
                f"updated user {username}: password changed ({revoked} session tokens revoked), "
                f"projects {', '.join(projects)}"
            )
    finally:
        await users.bus.close()


async def list_users(settings: Settings) -> str:
    users = await _connect(settings)
    try:
        found = await users.all()
    finally:
        await users.bus.close()
    if not found:
        return "no users"
    return "\n".join(f"{u.username}\t{','.join(u.projects)}" for u in found)


async def list_nodes(settings: Settings) -> str:
    users = await _connect(settings)
    try:
        found = await kv.scan(users.bus.kv.nodes, ">", NodeInfo)
    finally:
        await users.bus.close()
    if not found:
        return "no nodes known yet (is the deployer running?)"
    rows = [("NODE", "ADDRESS", "STATE", "AVAILABILITY", "MEMORY MB", "RESERVED MB", "FREE MB")]
    for v in sorted(found, key=lambda v: v.key):
        n = v.value
        free = max(0, n.memory_mb - n.reserved_mb)
        rows.append(
            (
                n.name,
                n.address,
                n.state,
                n.availability,
                str(n.memory_mb),
                str(n.reserved_mb),
                str(free),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def remove_user(settings: Settings, username: str) -> str:
    users = await _connect(settings)
    try:
        if await users.get(username) is None:
            raise RuleViolation(f"no user named {username!r}")
        await users.remove(username)
        revoked = await users.revoke_tokens(username)
    finally:
        await users.bus.close()
    return f"removed user {username} ({revoked} session tokens revoked)"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "add-user":
            line = sys.stdin.readline()
            if not line:
                raise RuleViolation("no password given: write it as the first line of stdin")
            password = line.rstrip("\r\n")
            out = asyncio.run(add_user(settings, args.username, args.project, password))
        elif args.command == "list-users":
            out = asyncio.run(list_users(settings))
        elif args.command == "nodes":
            out = asyncio.run(list_nodes(settings))
        else:
            out = asyncio.run(remove_user(settings, args.username))
    except (RuleViolation, SettingsError, BusError) as err:
        print(f"servicectl-admin: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(out)


if __name__ == "__main__":
    main()
