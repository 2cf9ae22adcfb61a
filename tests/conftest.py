"""Fixtures for every test: asyncio tasks must not outlive the test that made them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if asyncio.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.insert(0, "no_leaked_tasks")  # type: ignore[attr-defined]
    # Fault injection last: restarting dockerd kills every container on the machine.
    # The multi-node cluster just before it (its marker is set by its conftest,
    # whose hook runs before this one).
    items.sort(key=_order)


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("faults") is not None:
        return 2
    return 1 if item.get_closest_marker("multihost") is not None else 0


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    if left:
        # give tasks that are just finishing (cancelled in a finally) a moment
        await asyncio.sleep(0.05)
        left = [t for t in left if not t.done()]
    for t in left:
        t.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    assert not left, "the test left asyncio tasks running: " + ", ".join(
        sorted(t.get_name() for t in left)
    )
