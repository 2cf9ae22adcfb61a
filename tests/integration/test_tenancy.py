"""Tenancy: project B can neither see nor touch project A's services, logs or images."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests import apps
from tests.client import Api
from tests.deploying import definition, docker, docker_login, push, wait_text
from tests.stack import Stack


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


async def ws_status(stack: Stack, path: str, token: str) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(
                f"{stack.api_url}/servicectl-1{path}", headers={"X-Auth-Token": token}
            ) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as err:
            return err.status


def test_other_project_cannot_reach_anything(
    stack: Stack, api: Api, other_api: Api, project: str, app_image: str, tmp_path: Path
) -> None:
    assert api.post("/services", json={"name": "secret"}).status_code == 201
    image = push(api, "secret", app_image, "v1", tmp_path / "owner")
    api.put("/services/secret", json=definition("v1", {"GREETING": "private"}))
    wait_text(stack, project, "secret", "private from")
    token = other_api.token
    assert token is not None

    assert other_api.get("/services").json() == []
    for method, path, kwargs in [
        ("GET", "/services/secret", {}),
        ("GET", "/services/secret", {"params": {"view": "docker"}}),
        ("GET", "/services/secret", {"params": {"view": "logs", "tail": "10"}}),
        ("GET", "/services/secret/revisions", {}),
        ("PUT", "/services/secret", {"json": definition("v1")}),
        ("POST", "/services/secret/rollback", {"json": {}}),
        ("DELETE", "/services/secret", {}),
    ]:
        r = other_api.request(method, path, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert "no service named 'secret'" in r.json()["Error"]
    for path in ("/services/secret/logs/follow", "/services/secret/events/follow"):
        assert asyncio.run(ws_status(stack, path, token)) == 404
        assert asyncio.run(ws_status(stack, path, api.token or "")) == 101

    # B's own registry credentials cannot pull A's image, nor push over it
    other_api.post("/services", json={"name": "mine"})
    creds = other_api.get("/services/mine", params={"view": "docker"}).json()
    config = tmp_path / "other"
    assert docker_login(config, creds).returncode == 0
    docker(config, "rmi", image)
    assert docker(config, "pull", image).returncode != 0
    assert docker(config, "tag", app_image, image).returncode == 0
    assert docker(config, "push", image).returncode != 0

    # and A's service is untouched
    st = api.get("/services/secret").json()["status"]
    assert st["revision"] == 1 and st["service_status"] == "ACTIVE"
    wait_text(stack, project, "secret", "private from")
