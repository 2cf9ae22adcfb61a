"""Per-service repositories with scoped, expiring credentials, against the real registry.

Uses the stock docker CLI with DOCKER_CONFIG in a temporary directory and the
real clfpy client for the push.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests
from clfpy import ServicesClient

from services.api.secrets import digest
from shared import kv, names
from shared.models import RegistryCredential, ServiceRecord
from tests.client import Api
from tests.deploying import docker
from tests.deploying import docker_login as login
from tests.stack import Stack


def push_as(config: Path, source: str, target: str) -> subprocess.CompletedProcess[str]:
    tagged = docker(config, "tag", source, target)
    assert tagged.returncode == 0, tagged.stderr
    return docker(config, "push", target)


def deployer_credentials(stack: Stack, proxy_endpoint: str) -> dict[str, str]:
    """The platform's own pull credential, in the shape `login` takes."""
    return {
        "user": names.DEPLOYER_REGISTRY_USER,
        "password": stack.settings.deployer_secret_path.read_text().strip(),
        "proxy_endpoint": proxy_endpoint,
    }


@pytest.fixture(scope="module")
def base_image(busybox_context: Path) -> str:
    name = "servicectl-test/busybox-httpd:latest"
    r = subprocess.run(
        ["docker", "build", "-q", "-t", name, str(busybox_context)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return name


def test_clfpy_push_then_pull(
    stack: Stack,
    api: Api,
    project: str,
    busybox_context: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    token = api.token
    assert token
    srv = ServicesClient(stack.api_base)
    srv.create_new_service(token, "img")
    creds = srv.get_docker_credentials(token, "img")
    assert creds["repo_uri"] == f"{stack.registry}/{project}/img"
    assert creds["proxy_endpoint"] == f"http://{stack.registry}"
    assert creds["user"].startswith(f"{project}.img.") and creds["expires_at"].endswith("Z")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        srv.build_and_push_docker_image(token, "img", str(busybox_context), creds, tag="v1")
    assert "Something went wrong" not in out.getvalue(), out.getvalue()
    # the image is in the registry, readable with the same credentials
    config = tmp_path / "pull"
    assert login(config, creds).returncode == 0
    docker(config, "rmi", f"{creds['repo_uri']}:v1")
    pulled = docker(config, "pull", f"{creds['repo_uri']}:v1")
    assert pulled.returncode == 0, pulled.stderr
    # clfpy's pull works too
    with contextlib.redirect_stdout(io.StringIO()) as pulled_out:
        srv.pull_docker_image(token, "img", creds, tag="v1")
    assert "Something went wrong" not in pulled_out.getvalue()


def test_credentials_are_scoped_to_one_repository(
    stack: Stack, api: Api, other_api: Api, project: str, base_image: str, tmp_path: Path
) -> None:
    for name in ("mine", "neighbour"):
        assert api.post("/services", json={"name": name}).status_code == 201
    assert other_api.post("/services", json={"name": "theirs"}).status_code == 201
    creds = api.get("/services/mine", params={"view": "docker"}).json()
    config = tmp_path / "d"
    assert login(config, creds).returncode == 0
    ok = push_as(config, base_image, f"{creds['repo_uri']}:v1")
    assert ok.returncode == 0, ok.stderr
    denied = push_as(config, base_image, f"{stack.registry}/{project}/neighbour:v1")
    assert denied.returncode != 0
    assert "denied" in denied.stderr or "unauthorized" in denied.stderr.lower()
    other_project = other_api.get("/services/theirs", params={"view": "docker"}).json()
    denied = push_as(config, base_image, f"{other_project['repo_uri']}:v1")
    assert denied.returncode != 0
    # and a credential of another project cannot pull ours
    config2 = tmp_path / "o"
    assert login(config2, other_project).returncode == 0
    pulled = docker(config2, "pull", f"{creds['repo_uri']}:v1")
    assert pulled.returncode != 0


def _token(stack: Stack, user: str, password: str, scope: str) -> requests.Response:
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return requests.get(
        stack.settings.token_realm,
        params={"service": names.REGISTRY_SERVICE, "scope": scope},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )


def test_token_endpoint_grants_the_intersection(stack: Stack, api: Api, project: str) -> None:
    api.post("/services", json={"name": "tok"})
    creds = api.get("/services/tok", params={"view": "docker"}).json()
    r = _token(
        stack, creds["user"], creds["password"], f"repository:{project}/tok:push,pull,delete"
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert isinstance(body["issued_at"], str) and "refresh_token" not in body

    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": f"{project}/tok", "actions": ["pull", "push"]}
    ]
    other = _token(stack, creds["user"], creds["password"], f"repository:{project}/x:pull")
    assert jwt.decode(other.json()["token"], options={"verify_signature": False})["access"] == []
    bad = _token(stack, creds["user"], "wrong", f"repository:{project}/tok:pull")
    assert bad.status_code == 401 and bad.json()["errors"][0]["code"] == "UNAUTHORIZED"
    nobody = requests.get(stack.settings.token_realm, timeout=10)
    assert nobody.status_code == 401


def test_expired_credentials_are_refused(stack: Stack, api: Api, project: str) -> None:
    api.post("/services", json={"name": "exp"})
    record = api.get("/services/exp").json()
    assert record["name"] == "exp"

    async def plant() -> tuple[str, str]:
        async with stack.bus("test") as bus:
            svc = await kv.get(bus.kv.services, names.service_key(project, "exp"), ServiceRecord)
            assert svc is not None
            user = names.registry_user(project, "exp", "expired01")
            password = "p" * 43
            past = time.time() - 60
            await kv.put(
                bus.kv.registry_creds,
                user,
                RegistryCredential(
                    project=project,
                    service="exp",
                    service_uid=svc.value.uid,
                    password_digest=digest(password),
                    issued_at=past - 10,
                    expires_at=past,
                ),
            )
            return user, password

    user, password = asyncio.run(plant())
    r = _token(stack, user, password, f"repository:{project}/exp:pull")
    assert r.status_code == 401


def test_delete_revokes_credentials_and_images(
    stack: Stack, api: Api, project: str, base_image: str, tmp_path: Path
) -> None:
    api.post("/services", json={"name": "gone"})
    creds = api.get("/services/gone", params={"view": "docker"}).json()
    config = tmp_path / "d"
    assert login(config, creds).returncode == 0
    assert push_as(config, base_image, f"{creds['repo_uri']}:v1").returncode == 0
    assert push_as(config, base_image, f"{creds['repo_uri']}:v2").returncode == 0
    assert api.delete("/services/gone").status_code == 200
    r = _token(stack, creds["user"], creds["password"], f"repository:{project}/gone:pull")
    assert r.status_code == 401
    # the tags are gone from the registry: the platform's own pull credential cannot fetch them
    deployer = deployer_credentials(stack, creds["proxy_endpoint"])
    config2 = tmp_path / "deployer"
    assert login(config2, deployer).returncode == 0
    docker(config2, "rmi", f"{creds['repo_uri']}:v1", f"{creds['repo_uri']}:v2")
    for tag in ("v1", "v2"):
        pulled = docker(config2, "pull", f"{creds['repo_uri']}:{tag}")
        assert pulled.returncode != 0
        assert "not found" in pulled.stderr or "unknown" in pulled.stderr
    # a new service of the same name starts empty, and old credentials stay dead
    api.post("/services", json={"name": "gone"})
    assert login(tmp_path / "again", creds).returncode != 0


def test_deployer_credential_pulls_but_cannot_push(
    stack: Stack, api: Api, project: str, base_image: str, tmp_path: Path
) -> None:
    api.post("/services", json={"name": "plat"})
    creds = api.get("/services/plat", params={"view": "docker"}).json()
    config = tmp_path / "user"
    assert login(config, creds).returncode == 0
    assert push_as(config, base_image, f"{creds['repo_uri']}:v1").returncode == 0
    deployer = deployer_credentials(stack, creds["proxy_endpoint"])
    config2 = tmp_path / "deployer"
    assert login(config2, deployer).returncode == 0
    docker(config2, "rmi", f"{creds['repo_uri']}:v1")
    assert docker(config2, "pull", f"{creds['repo_uri']}:v1").returncode == 0
    assert push_as(config2, base_image, f"{creds['repo_uri']}:v9").returncode != 0


def test_docker_view_errors(stack: Stack, api: Api) -> None:
    r = api.get("/services/nosuch", params={"view": "docker"})
    assert r.status_code == 404
    api.post("/services", json={"name": "down"})
    stack.procs["registry"].stop()
    try:
        r = api.get("/services/down", params={"view": "docker"})
        assert r.status_code == 503
        assert "registry is unavailable" in r.json()["Error"]
    finally:
        stack.procs["registry"].start()
