"""The bad-input campaign: every endpoint, every kind of bad input, answered 4xx.

Each case says what is sent and which 4xx and message must come back; after
each, the project's service and its revisions must be exactly as before.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from services.api import secrets
from shared import kv, names
from shared.models import TokenRecord
from tests.client import Api, login, make_user, unique
from tests.deploying import definition
from tests.stack import Stack

GOOD = definition("v1", {"A": "b"})


def with_(**changes: Any) -> dict[str, Any]:
    body = dict(GOOD)
    for key, value in changes.items():
        body[key.replace("_", "-")] = value
    return body


def env(*pairs: tuple[str, str]) -> dict[str, Any]:
    return with_(environment=[{"name": n, "value": v} for n, v in pairs])


@dataclass
class Case:
    method: str
    path: str
    json: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    status: int = 400
    message: str = ""
    token: str = "good"  # good | none | forged | expired | revoked | malformed | other


CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- names
    "create: upper case": Case(
        "POST", "/services", {"name": "Web"}, message="begin with a lower-case letter"
    ),
    "create: digit first": Case(
        "POST", "/services", {"name": "1web"}, message="begin with a lower-case letter"
    ),
    "create: underscore": Case(
        "POST", "/services", {"name": "my_web"}, message="only lower-case letters"
    ),
    "create: dot": Case("POST", "/services", {"name": "a.b"}, message="only lower-case letters"),
    "create: slash": Case("POST", "/services", {"name": "a/b"}, message="only lower-case letters"),
    "create: traversal": Case(
        "POST", "/services", {"name": "../etc"}, message="begin with a lower-case letter"
    ),
    "create: trailing dash": Case(
        "POST", "/services", {"name": "web-"}, message="end with a letter or digit"
    ),
    "create: empty": Case("POST", "/services", {"name": ""}, message="must not be empty"),
    "create: too long": Case("POST", "/services", {"name": "a" * 40}, message="too long"),
    "create: unicode": Case("POST", "/services", {"name": "wéb"}, message="only lower-case"),
    "create: emoji": Case("POST", "/services", {"name": "a\U0001f600"}, message="only lower-case"),
    "create: null byte": Case("POST", "/services", {"name": "a\x00b"}, message="only lower-case"),
    "create: newline": Case("POST", "/services", {"name": "a\nb"}, message="only lower-case"),
    "create: duplicate": Case(
        "POST", "/services", {"name": "base"}, status=405, message="already exists"
    ),
    # ---------------------------------------------------------------- JSON and types
    "create: not json": Case("POST", "/services", data=b"{oops", message="not valid JSON"),
    "create: array": Case("POST", "/services", [1, 2], message="Expected `object`"),
    "create: string": Case("POST", "/services", "web", message="Expected `object`"),
    "create: null": Case("POST", "/services", data=b"null", message="Expected `object`"),
    "create: name number": Case("POST", "/services", {"name": 42}, message="Expected `str`"),
    "create: name list": Case("POST", "/services", {"name": ["a"]}, message="Expected `str`"),
    "create: missing name": Case("POST", "/services", {}, message="missing required field"),
    "create: unknown field": Case(
        "POST", "/services", {"name": "x", "image": "y"}, message="unknown field `image`"
    ),
    "create: health check wrong type": Case(
        "POST",
        "/services",
        {"name": "x", "health_check": "yes"},
        message="Expected `object | null`",
    ),
    "create: health interval string": Case(
        "POST",
        "/services",
        {"name": "x", "health_check": {"rel_path": "/", "status_codes": "200", "interval": "5"}},
        message="Expected `int`",
    ),
    "create: health path traversal": Case(
        "POST",
        "/services",
        {
            "name": "x",
            "health_check": {"rel_path": "/../../etc", "status_codes": "200", "interval": 5},
        },
        message="'..'",
    ),
    "create: health codes": Case(
        "POST",
        "/services",
        {"name": "x", "health_check": {"rel_path": "/", "status_codes": "ok", "interval": 5}},
        message="status_codes",
    ),
    "create: wrong content type": Case(
        "POST",
        "/services",
        data=b'{"name":"x"}',
        headers={"Content-Type": "text/plain"},
        status=415,
        message="Content-Type",
    ),
    "create: form encoded": Case(
        "POST",
        "/services",
        data=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        status=415,
        message="Content-Type",
    ),
    "create: huge body": Case(
        "POST",
        "/services",
        data=b'{"name": "' + b"a" * 100_000 + b'"}',
        status=413,
        message="too large",
    ),
    "create: deep nesting": Case(
        "POST", "/services", data=b"[" * 5000 + b"]" * 5000, message="request body"
    ),
    # ---------------------------------------------------------------- definitions
    "update: empty body": Case("PUT", "/services/base", data=b"", message="empty"),
    "update: missing tag": Case(
        "PUT",
        "/services/base",
        {k: v for k, v in GOOD.items() if k != "container-tag"},
        message="`container-tag`",
    ),
    "update: unknown key": Case(
        "PUT", "/services/base", with_(replicas=3), message="unknown field `replicas`"
    ),
    "update: snake case keys": Case(
        "PUT",
        "/services/base",
        {k.replace("-", "_"): v for k, v in GOOD.items()},
        message="unknown field",
    ),
    "update: tag with colon": Case(
        "PUT", "/services/base", with_(container_tag="v1:latest"), message="container-tag"
    ),
    "update: tag with slash": Case(
        "PUT", "/services/base", with_(container_tag="../v1"), message="container-tag"
    ),
    "update: tag empty": Case(
        "PUT", "/services/base", with_(container_tag=""), message="container-tag"
    ),
    "update: tag number": Case(
        "PUT", "/services/base", with_(container_tag=1), message="Expected `str`"
    ),
    "update: zero memory": Case(
        "PUT",
        "/services/base",
        with_(memory_reservation=0),
        message="memory-reservation must be at least",
    ),
    "update: negative memory": Case(
        "PUT", "/services/base", with_(memory_limit=-64), message="memory-limit must be at least"
    ),
    "update: huge memory": Case(
        "PUT", "/services/base", with_(memory_limit=10**9), message="memory-limit must be at most"
    ),
    "update: enormous integer": Case(
        "PUT", "/services/base", with_(memory_limit=10**30), message="memory-limit must be at most"
    ),
    "update: float memory": Case(
        "PUT", "/services/base", with_(memory_limit=64.5), message="Expected `int`"
    ),
    "update: bool memory": Case(
        "PUT", "/services/base", with_(memory_limit=True), message="Expected `int`"
    ),
    "update: limit below reservation": Case(
        "PUT",
        "/services/base",
        with_(memory_reservation=64, memory_limit=32),
        message="greater than or equal",
    ),
    "update: port 0": Case(
        "PUT", "/services/base", with_(container_port=0), message="between 1 and 65535"
    ),
    "update: port 65536": Case(
        "PUT", "/services/base", with_(container_port=65536), message="between 1 and 65535"
    ),
    "update: port string": Case(
        "PUT", "/services/base", with_(container_port="8080"), message="Expected `int`"
    ),
    "update: env not a list": Case(
        "PUT", "/services/base", with_(environment={"A": "b"}), message="Expected `array`"
    ),
    "update: env missing value": Case(
        "PUT",
        "/services/base",
        with_(environment=[{"name": "A"}]),
        message="missing required field `value`",
    ),
    "update: env value number": Case(
        "PUT",
        "/services/base",
        with_(environment=[{"name": "A", "value": 1}]),
        message="Expected `str`",
    ),
    "update: env name with dash": Case(
        "PUT", "/services/base", env(("A-B", "x")), message="only letters, digits"
    ),
    "update: env name with equals": Case(
        "PUT", "/services/base", env(("A=B", "x")), message="only letters, digits"
    ),
    "update: env name empty": Case(
        "PUT", "/services/base", env(("", "x")), message="must not be empty"
    ),
    "update: env duplicate": Case(
        "PUT", "/services/base", env(("A", "1"), ("A", "2")), message="more than once"
    ),
    "update: env newline": Case(
        "PUT", "/services/base", env(("A", "x\ny")), message="control characters"
    ),
    "update: env header injection": Case(
        "PUT", "/services/base", env(("A", "x\r\nX-Injected: 1")), message="control characters"
    ),
    "update: env nul": Case(
        "PUT", "/services/base", env(("A", "x\x00y")), message="control characters"
    ),
    "update: env escape": Case(
        "PUT", "/services/base", env(("A", "\x1b[31m")), message="control characters"
    ),
    "update: env value too long": Case(
        "PUT", "/services/base", env(("A", "x" * 40_000)), message="at most"
    ),
    "update: huge env list": Case(
        "PUT", "/services/base", env(*[(f"V{i}", "x") for i in range(500)]), message="at most 200"
    ),
    "update: huge env list over body limit": Case(
        "PUT",
        "/services/base",
        env(*[(f"V{i}", "x" * 100) for i in range(1000)]),
        status=413,
        message="too large",
    ),
    "update: unknown service": Case(
        "PUT", "/services/nosuch", GOOD, status=404, message="no service named"
    ),
    "update: bad name in path": Case(
        "PUT", "/services/Bad", GOOD, status=404, message="no service named"
    ),
    # ---------------------------------------------------------------- views and paths
    "view: unknown": Case(
        "GET", "/services/base", params={"view": "secrets"}, message="unknown view"
    ),
    "view: empty": Case("GET", "/services/base", params={"view": ""}, message="unknown view"),
    "logs: negative tail": Case(
        "GET", "/services/base", params={"view": "logs", "tail": "-1"}, message="tail"
    ),
    "logs: tail not a number": Case(
        "GET", "/services/base", params={"view": "logs", "tail": "ten"}, message="tail"
    ),
    "logs: tail huge": Case(
        "GET", "/services/base", params={"view": "logs", "tail": "99999999"}, message="tail"
    ),
    "logs: streams zero": Case(
        "GET", "/services/base", params={"view": "logs", "streams": "0"}, message="streams"
    ),
    "logs: streams not a number": Case(
        "GET", "/services/base", params={"view": "logs", "streams": "1.5"}, message="streams"
    ),
    "path: traversal": Case("GET", "/services/..%2F..%2Fetc%2Fpasswd", status=404),
    "path: encoded null": Case("GET", "/services/a%00b", status=404, message="no service named"),
    "path: unknown endpoint": Case(
        "GET", "/services/base/secrets", status=404, message="no such endpoint"
    ),
    "path: method not allowed": Case(
        "POST", "/services/base", {"name": "x"}, status=405, message="not allowed"
    ),
    "patch: unknown field": Case(
        "PATCH", "/services/base", {"name": "x"}, status=400, message="unknown field `name`"
    ),
    "patch: nothing to change": Case(
        "PATCH", "/services/base", {}, status=400, message="nothing to change"
    ),
    "patch: bad health path": Case(
        "PATCH",
        "/services/base",
        {"health_check": {"rel_path": "/%2e%2e/x"}},
        status=400,
        message="'..' segments",
    ),
    "delete: unknown": Case("DELETE", "/services/nosuch", status=404, message="no service named"),
    "rollback: no such revision": Case(
        "POST", "/services/base/rollback", {"revision": 7}, message="between 1 and 1"
    ),
    "rollback: revision string": Case(
        "POST", "/services/base/rollback", {"revision": "1"}, message="Expected `int | null`"
    ),
    "rollback: nothing earlier": Case(
        "POST", "/services/base/rollback", {}, message="no earlier revision"
    ),
    # ---------------------------------------------------------------- tokens
    "token: missing": Case(
        "GET", "/services", token="none", status=403, message="missing session token"
    ),
    "token: malformed": Case(
        "GET", "/services", token="malformed", status=403, message="malformed"
    ),
    "token: forged": Case(
        "GET", "/services", token="forged", status=403, message="unknown or revoked"
    ),
    "token: expired": Case("GET", "/services", token="expired", status=403, message="expired"),
    "token: revoked": Case(
        "PUT", "/services/base", GOOD, token="revoked", status=403, message="unknown or revoked"
    ),
    "token: basic scheme": Case(
        "GET",
        "/services",
        token="none",
        headers={"Authorization": "Basic YTpi"},
        status=403,
        message="Bearer",
    ),
    "token: other project deletes": Case(
        "DELETE", "/services/base", token="other", status=404, message="no service named"
    ),
    "token: other project credentials": Case(
        "GET", "/services/base", token="other", params={"view": "docker"}, status=404
    ),
    "login: wrong password": Case(
        "POST",
        "/auth/tokens",
        {"username": "nobody", "password": "x" * 10, "project": "p"},
        token="none",
        status=403,
        message="invalid username",
    ),
    "login: missing field": Case(
        "POST",
        "/auth/tokens",
        {"username": "nobody"},
        token="none",
        message="missing required field",
    ),
    "login: password number": Case(
        "POST",
        "/auth/tokens",
        {"username": "a", "password": 1, "project": "p"},
        token="none",
        message="Expected `str`",
    ),
}


@pytest.fixture(scope="module")
def campaign(stack: Stack) -> dict[str, Any]:
    project = unique("p")
    user, pw = make_user(stack, project)
    good = login(stack, user, pw, project)
    api = Api(stack, good)
    assert api.post("/services", json={"name": "base"}).status_code == 201
    assert api.put("/services/base", json=definition("no-such-tag")).status_code == 200
    revoked = login(stack, user, pw, project)
    Api(stack, revoked).delete("/auth/tokens/current")
    other_project = unique("q")
    other_user, other_pw = make_user(stack, other_project)
    expired = secrets.new_token()

    async def plant_expired() -> None:
        async with stack.bus("test") as bus:
            await kv.put(
                bus.kv.tokens,
                names.token_key(secrets.digest(expired)),
                TokenRecord(
                    username=user,
                    project=project,
                    issued_at=time.time() - 100,
                    expires_at=time.time() - 50,
                ),
            )

    asyncio.run(plant_expired())
    return {
        "api": api,
        "tokens": {
            "good": good,
            "revoked": revoked,
            "expired": expired,
            "forged": secrets.new_token(),
            "malformed": "sct_not-a-token",
            "other": login(stack, other_user, other_pw, other_project),
        },
    }


def snapshot(api: Api) -> tuple[Any, ...]:
    services = api.get("/services").json()
    revisions = api.get("/services/base/revisions").json()
    return services, revisions


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(stack: Stack, campaign: dict[str, Any], name: str) -> None:
    case = CASES[name]
    api: Api = campaign["api"]
    before = snapshot(api)
    headers = dict(case.headers)
    if case.data is not None:
        headers.setdefault("Content-Type", "application/json")
    if case.token != "none":
        headers["X-Auth-Token"] = campaign["tokens"][case.token]
    r = requests.request(
        case.method,
        f"{stack.api_url}/servicectl-1{case.path}",
        json=case.json if case.data is None else None,
        data=case.data,
        params=case.params,
        headers=headers,
        timeout=30,
    )
    assert r.status_code == case.status, r.text[:300]
    error = r.json()["Error"]
    assert isinstance(error, str) and error
    assert case.message in error, error
    assert snapshot(api) == before


def test_campaign_is_large_enough() -> None:
    assert len(CASES) >= 60
