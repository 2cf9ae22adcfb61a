"""The state file of each test cluster (`/run/servicectl-cluster/<name>/cluster.json`).

It records what `up` chose (index, node sizes, registry, owning process) so a
later `status`, `down` or `Cluster(name)` finds the same cluster, and so two
clusters never take the same address block. Teardown must not depend on it:
everything a cluster makes can be found from its name alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from deploy import cluster_config as cfg


@dataclass(frozen=True, kw_only=True)
class SavedState:
    name: str
    index: int
    memory_mb: tuple[int, ...]
    registry: str
    owner_pid: int | None = None


def read(name: str) -> SavedState | None:
    """The saved state of cluster `name`, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads((cfg.state_dir(name) / "cluster.json").read_text())
        return SavedState(
            name=str(data["name"]),
            index=int(data["index"]),
            memory_mb=tuple(int(m) for m in data["memory_mb"]),
            registry=str(data["registry"]),
            owner_pid=None if data.get("owner_pid") is None else int(data["owner_pid"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(state: SavedState) -> None:
    d = cfg.state_dir(state.name)
    d.mkdir(parents=True, exist_ok=True)
    (d / "cluster.json").write_text(json.dumps(asdict(state)) + "\n")


def all_states() -> dict[str, SavedState]:
    try:
        names = [p.name for p in cfg.STATE_ROOT.iterdir() if p.is_dir()]
    except OSError:
        return {}
    return {n: s for n in names if (s := read(n)) is not None}


def claimed_indices() -> dict[str, int]:
    return {name: s.index for name, s in all_states().items()}


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise the choice of an index between concurrent `up`s."""
    cfg.STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with (cfg.STATE_ROOT / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
