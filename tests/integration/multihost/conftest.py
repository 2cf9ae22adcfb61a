"""The multi-node cluster of the multihost tests: 3 dockerd nodes in network namespaces.

`cluster` is session-scoped: up once (about a second), nodes of 2048, 2048 and
1024 MB, and always torn down: in a `finally`, by `atexit`, and on SIGTERM or
SIGHUP (turned into KeyboardInterrupt so pytest unwinds its fixtures). A
cluster whose pytest was SIGKILLed is removed by the next run (`reap_stale`).
Each session names its cluster after its pid, so two sessions can run at once.
Every test under this directory is marked `multihost` (`make test-multihost`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from deploy.cluster import Cluster, ClusterError, ConfigError
from tests import apps

HERE = Path(__file__).parent
MEMORY_MB = (2048, 2048, 1024)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.multihost)


def cluster_name(suffix: str = "") -> str:
    """A name of this session's own ("mh" + pid digits, at most 10 characters)."""
    return f"mh{os.getpid() % 100_000}{suffix}"


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise KeyboardInterrupt (so `finally`s run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def running_cluster(name: str, memory_mb: tuple[int, ...]) -> Iterator[Cluster]:
    """A cluster that is up inside the block and gone (verified) after it, whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("the multihost tests need root (network namespaces, mounts, cgroups)")
    with contextlib.suppress(ClusterError):
        Cluster.reap_stale()
    c = Cluster(name, memory_mb=memory_mb, owner_pid=os.getpid())
    atexit.register(c.down)
    with signals_unwind():
        try:
            try:
                c.up()
            except (ClusterError, ConfigError) as err:
                pytest.fail(f"cannot start the multi-node test cluster {name}: {err}")
            yield c
        finally:
            try:
                c.down()
            finally:
                atexit.unregister(c.down)
    left = c.leftovers()
    assert not left, f"cluster {name} left behind: {left}"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """Three Ready Swarm nodes (node 1 the manager) of 2048, 2048 and 1024 MB."""
    with running_cluster(cluster_name(), MEMORY_MB) as c:
        yield c


@pytest.fixture(scope="session")
def cluster_app_image(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ID of the test app image (tests/apps.py), built on the default engine, on every node.

    Use it with `--no-resolve-image` (no registry holds it).
    """
    tag = apps.build_image(tmp_path_factory.mktemp("cluster-app"))
    return cluster.load_image(tag)
