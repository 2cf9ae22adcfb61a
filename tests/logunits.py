"""Log lines made up for tests: numbered units with distinct timestamps."""

from __future__ import annotations

from services.logs.batches import Batch
from services.logs.sequence import Unit

CID = "c0ffee" * 10


def stamp(i: int) -> str:
    return f"2026-11-25T03:{i // 600:02d}:{i // 10 % 60:02d}.{i % 10:09d}Z"


def unit(n: int, text: str | None = None, ts: str | None = None) -> Unit:
    return Unit(ts or stamp(n), 0, n, "stdout" if n % 3 else "stderr", text or f"line {n}")


def lines_of(batches: list[Batch]) -> list[Unit]:
    return [u for b in batches for u in b.units]
