"""Deployment paths are unique across projects: `/<project>-<service>` has one owner."""

from __future__ import annotations

import uuid

from tests.client import Api, login, make_user
from tests.stack import Stack


def user_of(stack: Stack, project: str) -> Api:
    user, pw = make_user(stack, project)
    return Api(stack, login(stack, user, pw, project))


def test_a_path_another_project_owns_is_refused_until_it_is_free(stack: Stack) -> None:
    base = "red" + uuid.uuid4().hex[:4]
    first = user_of(stack, f"{base}-ab")  # project red…-ab, service c  → /red…-ab-c
    second = user_of(stack, base)  # project red…,    service ab-c → /red…-ab-c
    assert first.post("/services", json={"name": "c"}).status_code == 201
    r = second.post("/services", json={"name": "ab-c"})
    assert r.status_code == 405, r.text  # clfpy: MethodNotAllowedException with the message
    assert f"/{base}-ab-c is already taken by a service of another project" in r.json()["Error"]
    assert second.get("/services").json() == []
    # other names of the same project are fine, and the owner is untouched
    assert second.post("/services", json={"name": "ab-d"}).status_code == 201
    assert [s["name"] for s in first.get("/services").json()] == ["c"]
    # once the owner is deleted the path is free
    assert first.delete("/services/c").json()["status"] == "DELETED"
    assert second.post("/services", json={"name": "ab-c"}).status_code == 201
    assert first.post("/services", json={"name": "c"}).status_code == 405
