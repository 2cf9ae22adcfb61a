"""Concurrent writers: compare-and-set keeps every accepted update and one create."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.client import Api
from tests.deploying import definition, status, wait_for


def test_twenty_concurrent_updates_get_consecutive_revisions(api: Api) -> None:
    assert api.post("/services", json={"name": "race"}).status_code == 201

    def update(i: int) -> tuple[int, int]:
        r = api.put("/services/race", json=definition("v1", {"N": str(i)}))
        return r.status_code, r.json().get("revision", 0)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(update, range(20)))
    assert all(code == 200 for code, _ in results), results
    revisions = sorted(rev for _, rev in results)
    assert revisions == list(range(1, 21))
    listed = api.get("/services/race/revisions").json()
    assert [r["revision"] for r in listed["revisions"]] == list(range(1, 21))
    assert listed["revision"] == 20
    # every revision carries the environment of the request that got it
    by_rev = {r["revision"]: r for r in listed["revisions"]}
    values = {
        next(e["value"] for e in by_rev[rev]["environment"] if e["name"] == "N")
        for rev in range(1, 21)
    }
    assert values == {str(i) for i in range(20)}
    events = [e for e in status(api, "race")["events"] if e["type"] == "service.updated"]
    assert len(events) == 20


def test_the_service_ends_on_the_last_accepted_revision(api: Api) -> None:
    assert api.post("/services", json={"name": "last"}).status_code == 201
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda i: api.put("/services/last", json=definition("nope")), range(20)))

    def settled() -> bool:
        st = status(api, "last")
        return st["revision"] == 20 and st.get("deployment", {}).get("revision") == 20

    wait_for(settled, 60, "the deployer to work on revision 20")


def test_concurrent_creates_yield_one_success(api: Api) -> None:
    with ThreadPoolExecutor(20) as pool:
        codes = list(
            pool.map(lambda _: api.post("/services", json={"name": "once"}).status_code, range(20))
        )
    assert codes.count(201) == 1
    assert codes.count(405) == 19
    assert [s["name"] for s in api.get("/services").json()] == ["once"]
