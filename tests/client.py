"""Test helpers for talking to a stack's api: a requests wrapper bound to a token, users."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import requests

from services.api.admin import add_user
from tests.stack import Stack


class Api:
    """A thin requests wrapper bound to one token (or none)."""

    def __init__(self, stack: Stack, token: str | None = None, prefix: str = "/servicectl-1"):
        self.stack = stack
        self.base = stack.api_url + prefix
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"X-Auth-Token": self.token} if self.token else {}
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = self.headers(kw.pop("headers", None))
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def make_user(stack: Stack, project: str, password: str = "correct horse") -> tuple[str, str]:
    username = unique("u")
    asyncio.run(add_user(stack.settings, username, project, password))
    return username, password


def login(stack: Stack, username: str, password: str, project: str) -> str:
    r = requests.post(
        f"{stack.api_url}/auth/tokens",
        json={"username": username, "password": password, "project": project},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])
