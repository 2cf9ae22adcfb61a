"""Users, tokens and their failures, against the real api and NATS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
import requests

from services.api import secrets
from shared import kv, names
from tests.client import Api, login, make_user, unique
from tests.stack import Stack


def test_login_gives_token_that_lists_services(stack: Stack, project: str) -> None:
    user, pw = make_user(stack, project)
    r = requests.post(
        f"{stack.api_url}/auth/tokens",
        json={"username": user, "password": pw, "project": project},
        timeout=10,
    )
    assert r.status_code == 201
    body = r.json()
    assert body["token"].startswith("sct_") and body["expires_at"].endswith("Z")
    assert Api(stack, body["token"]).get("/services").json() == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u, p, proj: {"username": u, "password": p + "x", "project": proj},
        lambda u, p, proj: {"username": u + "x", "password": p, "project": proj},
        lambda u, p, proj: {"username": u, "password": p, "project": proj + "x"},
        lambda u, p, proj: {"username": "Bad Name", "password": p, "project": proj},
        lambda u, p, proj: {"username": u, "password": p, "project": "Bad Project"},
    ],
    ids=["wrong-password", "unknown-user", "other-project", "malformed-user", "malformed-project"],
)
def test_bad_login_is_403(stack: Stack, project: str, mutate) -> None:  # type: ignore[no-untyped-def]
    user, pw = make_user(stack, project)
    r = requests.post(f"{stack.api_url}/auth/tokens", json=mutate(user, pw, project), timeout=10)
    assert r.status_code == 403
    assert "invalid username, password or project" in r.json()["Error"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing session token"),
        ({"X-Auth-Token": "nonsense"}, "malformed"),
        ({"X-Auth-Token": "sct_" + "A" * 43}, "unknown or revoked"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": "Bearer sct_" + "B" * 43}, "unknown or revoked"),
        ({"X-Auth-Token": "sct_" + "é" * 43}, "malformed"),
    ],
    ids=["missing", "malformed", "unknown", "basic-auth", "unknown-bearer", "non-ascii"],
)
def test_token_failures_are_403(stack: Stack, headers: dict[str, str], message: str) -> None:
    for method, path in [
        ("GET", "/services"),
        ("POST", "/services"),
        ("GET", "/services/x"),
        ("PUT", "/services/x"),
        ("DELETE", "/services/x"),
    ]:
        r = requests.request(
            method,
            f"{stack.api_url}{path}",
            headers={k: v.encode() for k, v in headers.items()},
            json={"name": "x"},
            timeout=10,
        )
        assert r.status_code == 403, (method, path, r.text)
        assert message in r.json()["Error"]


def test_bearer_header_works(stack: Stack, project: str) -> None:
    user, pw = make_user(stack, project)
    token = login(stack, user, pw, project)
    r = requests.get(
        f"{stack.api_url}/services", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200


def test_revoked_token_is_refused(stack: Stack, project: str) -> None:
    user, pw = make_user(stack, project)
    api = Api(stack, login(stack, user, pw, project))
    assert api.get("/auth/tokens/current").json()["project"] == project
    assert api.delete("/auth/tokens/current").status_code == 200
    r = api.get("/services")
    assert r.status_code == 403 and "revoked" in r.json()["Error"]


async def _purge_token(stack: Stack, token: str) -> None:
    """Revoke a token the way another api instance would: straight in the bucket."""
    async with stack.bus("test-auth") as bus:
        await kv.purge(bus.kv.tokens, names.token_key(secrets.digest(token)))


def test_token_revoked_elsewhere_is_refused_at_once(stack: Stack, project: str) -> None:
    """The api caches verified tokens; a change in the bucket evicts them immediately."""
    user, pw = make_user(stack, project)
    api = Api(stack, login(stack, user, pw, project))
    for _ in range(3):  # now certainly cached
        assert api.get("/services").status_code == 200
    asyncio.run(_purge_token(stack, api.token or ""))
    deadline = time.monotonic() + 0.5  # a NATS message, not the cache's 5 s lifetime
    while (r := api.get("/services")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r.status_code == 403 and "revoked" in r.json()["Error"]


def test_expired_token_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = Stack(tmp_path_factory.mktemp("short-tokens"), {"SERVICECTL_TOKEN_TTL": "10"})
    try:
        s.start(("nats", "api"))
        project = unique("p")
        user, pw = make_user(s, project)
        api = Api(s, login(s, user, pw, project))
        assert api.get("/services").status_code == 200
        time.sleep(10.5)
        r = api.get("/services")
        assert r.status_code == 403
        assert "expired" in r.json()["Error"] or "unknown" in r.json()["Error"]
    finally:
        s.stop()


def test_admin_cli_adds_and_updates_users(stack: Stack) -> None:
    user, project = unique("cli"), unique("p")
    env = stack.env
    cmd = [sys.executable, "-m", "services.api.admin", "add-user", user, "--project", project]
    r = subprocess.run(cmd, input="first-password\n", capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "created user" in r.stdout
    login(stack, user, "first-password", project)
    r = subprocess.run(cmd, input="second-password\n", capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "updated user" in r.stdout
    resp = requests.post(
        f"{stack.api_url}/auth/tokens",
        json={"username": user, "password": "first-password", "project": project},
        timeout=10,
    )
    assert resp.status_code == 403
    login(stack, user, "second-password", project)
    bad = subprocess.run(
        [sys.executable, "-m", "services.api.admin", "add-user", "Bad", "--project", project],
        input="whatever-pw\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "username must start" in bad.stderr
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, env=env)
    assert short.returncode == 1 and "at least 8" in short.stderr
