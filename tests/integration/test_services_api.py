"""Service records through the REST API: the clfpy contract and bad input."""

from __future__ import annotations

import pytest
import requests

from tests.client import Api
from tests.stack import Stack


def test_create_list_show_delete(api: Api, project: str, stack: Stack) -> None:
    r = api.post("/services", json={"name": "web"})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "web"
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert links == {
        "self": "/services/web",
        "deployment": f"{stack.settings.gateway_public_url}/{project}-web",
    }
    assert api.get("/services").json() == [body]
    status = api.get("/services/web").json()["status"]
    assert status["service_status"] == "INACTIVE"
    assert (status["count_desired"], status["count_running"], status["count_pending"]) == (0, 0, 0)
    assert status["tasks"] == []
    assert [e["type"] for e in status["events"]] == ["service.created"]
    assert status["target_health"] == {
        "health_check_path": f"/{project}-web",
        "interval": 10,
        "status_codes": "200-499",
        "targets": [],
    }
    r = api.delete("/services/web")
    assert r.status_code == 200 and r.json() == {"name": "web", "status": "DELETED"}
    assert api.get("/services").json() == []
    assert api.get("/services/web").status_code == 404


def test_health_check_is_stored(api: Api, project: str) -> None:
    hc = {"rel_path": "/health", "status_codes": "200-299", "interval": 15}
    assert api.post("/services", json={"name": "hc", "health_check": hc}).status_code == 201
    th = api.get("/services/hc").json()["status"]["target_health"]
    assert th["health_check_path"] == f"/{project}-hc/health"
    assert (th["interval"], th["status_codes"]) == (15, "200-299")


def test_duplicate_name_is_405(api: Api) -> None:
    assert api.post("/services", json={"name": "dup"}).status_code == 201
    r = api.post("/services", json={"name": "dup"})
    assert r.status_code == 405 and "already exists" in r.json()["Error"]


def test_other_project_sees_404(api: Api, other_api: Api) -> None:
    assert api.post("/services", json={"name": "mine"}).status_code == 201
    assert other_api.get("/services").json() == []
    for method in ("GET", "DELETE"):
        r = other_api.request(method, "/services/mine")
        assert r.status_code == 404, method
        assert "no service named 'mine'" in r.json()["Error"]
    r = other_api.put(
        "/services/mine",
        json={
            "container-tag": "v1",
            "memory-reservation": 32,
            "memory-limit": 64,
            "container-port": 8080,
            "environment": [],
        },
    )
    assert r.status_code == 404
    assert other_api.get("/services/mine", params={"view": "docker"}).status_code == 404
    # and the owner still has it, unchanged
    assert api.get("/services/mine").json()["status"]["service_status"] == "INACTIVE"
    # the other project may use the same name for its own service
    assert other_api.post("/services", json={"name": "mine"}).status_code == 201


def test_served_at_root_and_prefix(api: Api, stack: Stack) -> None:
    root = Api(stack, api.token, prefix="")
    assert api.post("/services", json={"name": "both"}).status_code == 201
    assert [s["name"] for s in root.get("/services").json()] == ["both"]


def test_name_rules_at_the_edge(api: Api, project: str) -> None:
    longest = "a" * (32 - len(project) - 1)
    assert api.post("/services", json={"name": longest}).status_code == 201
    r = api.post("/services", json={"name": longest + "a"})
    assert r.status_code == 400 and "too long" in r.json()["Error"]
    r = api.get(f"/services/{longest}a")
    assert r.status_code == 404 and "too long" in r.json()["Error"]


BAD_CREATE = [
    ({"name": "Bad"}, "begin with a lower-case letter"),
    ({"name": "bad_"}, "only lower-case"),
    ({"name": "bad-"}, "end with a letter or digit"),
    ({"name": ""}, "must not be empty"),
    ({}, "missing required field `name`"),
    ({"name": 5}, "Expected `str`, got `int`"),
    ({"name": "x", "extra": 1}, "unknown field `extra`"),
    ([{"name": "x"}], "Expected `object`, got `array`"),
    # (a health check given only its path is fine: 200-399, every 10 s)
    ({"name": "x", "health_check": {"rel_path": 7}}, "Expected `str`, got `int`"),
    (
        {"name": "x", "health_check": {"rel_path": "h", "status_codes": "200", "interval": 10}},
        "start with '/'",
    ),
    (
        {"name": "x", "health_check": {"rel_path": "/h", "status_codes": "2xx", "interval": 10}},
        "status_codes",
    ),
    (
        {"name": "x", "health_check": {"rel_path": "/h", "status_codes": "200", "interval": "10"}},
        "Expected `int`, got `str`",
    ),
    (
        {"name": "x", "health_check": {"rel_path": "/h", "status_codes": "200", "interval": 0}},
        "interval",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_CREATE)
def test_bad_create_bodies(api: Api, body: object, message: str) -> None:
    r = api.post("/services", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["Error"]
    assert api.get("/services").json() == []


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "empty"),
        (b'{"name": "x"}', "text/plain", 415, "Content-Type must be application/json"),
        (b'{"name": "x"}', None, 415, "Content-Type"),
        (b'{"name": "' + b"a" * 70000 + b'"}', "application/json", 413, "too large"),
        (b'\xff\xfe{"name": 1}', "application/json", 400, "not valid JSON"),
    ],
)
def test_bad_bodies(
    api: Api, data: bytes, content_type: str | None, status: int, message: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = api.post("/services", data=data, headers=headers)
    assert r.status_code == status, r.text
    assert message in r.json()["Error"]


def test_unknown_view_and_paths(api: Api) -> None:
    api.post("/services", json={"name": "v"})
    r = api.get("/services/v", params={"view": "nope"})
    assert r.status_code == 400 and "unknown view 'nope'" in r.json()["Error"]
    r = api.get("/nowhere")
    assert r.status_code == 404 and "no such endpoint" in r.json()["Error"]
    r = api.request("POST", "/services/v")  # (PATCH changes the health check now)
    assert r.status_code == 405 and "not allowed" in r.json()["Error"]
    r = api.get("/services/..%2F..%2Fetc")
    assert r.status_code == 404


def test_openapi_describes_every_endpoint(stack: Stack) -> None:
    spec = requests.get(f"{stack.api_url}/servicectl-1/openapi.json", timeout=10).json()
    paths = spec["paths"]
    for path, methods in [
        ("/servicectl-1/auth/tokens", {"post"}),
        ("/servicectl-1/services", {"get", "post"}),
        ("/servicectl-1/services/{name}", {"get", "put", "delete"}),
        ("/servicectl-1/services/{name}/revisions", {"get"}),
        ("/servicectl-1/services/{name}/rollback", {"post"}),
        ("/servicectl-1/services/{name}/logs/follow", {"get"}),
        ("/servicectl-1/services/{name}/events/follow", {"get"}),
        ("/servicectl-1/auth/tokens/current", {"get", "delete"}),
        ("/servicectl-1/auth/registry", {"get"}),
        ("/servicectl-1/healthz", {"get"}),
    ]:
        assert methods <= set(paths[path]), path
    assert "ServiceDefinitionBody" in spec["components"]["schemas"]
