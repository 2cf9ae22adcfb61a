"""`python -m bench [PART ...]`: run benchmark parts (or all), print the table.

Each part gets a fresh platform (stopped and cleaned up afterwards, also on
errors or Ctrl-C); a part that fails is reported in the table as not measured
and the others still run. The exit status is 0 unless the run could not start
at all (no Docker engine): missed targets are figures, not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import (
    images,
    part_api,
    part_deploy,
    part_gateway,
    part_logs,
    part_multihost,
    part_scale,
    wrk,
)
from bench.console import log
from bench.harness import Platform, docker_ok, remove_baselines
from bench.profile import Profiler
from bench.report import Row, render

PARTS = ("deploy", "gateway", "logs", "api", "scale", "multihost")
ROOT = Path(__file__).resolve().parent.parent


class Images:
    """Images built once per run, on first use."""

    def __init__(self, workdir: Path, run_id: str) -> None:
        self.workdir = workdir
        self.run_id = run_id
        self.built: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name not in self.built:
            build = images.build_app if name == "app" else images.build_keepalive
            self.built[name] = build(self.workdir, self.run_id)
        return self.built[name]

    def remove(self) -> None:
        images.remove(list(self.built.values()))


def _runner(part: str, imgs: Images) -> Callable[[Platform], Coroutine[Any, Any, list[Row]]]:
    if part == "deploy":
        return lambda p: part_deploy.run(p, imgs.get("app"))
    if part == "gateway":
        return lambda p: part_gateway.run(p, imgs.get("keepalive"))
    if part == "logs":
        return lambda p: part_logs.run(p, imgs.get("app"))
    if part == "api":
        return lambda p: part_api.run(p, imgs.get("app"))
    if part == "scale":
        return lambda p: part_scale.run(p, imgs.get("app"))
    raise ValueError(f"part {part} has no single-host platform")


def _machine() -> str:
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    try:
        distro = Path("/etc/debian_version").read_text().strip()
    except OSError:
        distro = "?"
    return (
        f"{os.cpu_count()} cores, Debian {distro}, kernel {platform.release()}, "
        f"dockerd {docker}, Python {platform.python_version()}"
    )


def _tree() -> str:
    """Which code was measured: the commit, and how many files differ from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.splitlines()
    return f"commit {head or '?'}" + (f" + {len(changed)} modified files" if changed else "")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min: {five:.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("parts", nargs="*", metavar="PART", help=f"{', '.join(PARTS)} or all (default)")
    ap.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample the platform's Python processes with py-spy during each measured phase "
        "and write collapsed stacks and summaries to DIR (slows the run down a little)",
    )
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    chosen = args.parts or ["all"]
    unknown = [c for c in chosen if c not in (*PARTS, "all")]
    if unknown:
        ap.error(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}, all")
    parts = list(PARTS) if "all" in chosen else list(dict.fromkeys(chosen))
    if not docker_ok():
        print("no Docker engine answers: run `make docker` (or `make bench`)", file=sys.stderr)
        return 2
    if "gateway" in parts or "api" in parts:
        wrk.ensure()
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"servicectl-bench-{run_id}-"))
    imgs = Images(workdir, run_id)
    profiler = Profiler(args.profile.absolute() if args.profile else None)
    rows: list[Row] = []
    started = time.monotonic()
    load_before = _load()
    log(f"run {run_id}: {', '.join(parts)} on {_machine()}; load average {load_before}")
    try:
        for part in parts:
            t0 = time.monotonic()
            log(f"--- {part}")
            try:
                if part == "multihost":  # a platform of its own, on a test cluster
                    rows += part_multihost.run(run_id, workdir, imgs.get("app"))
                else:
                    with Platform(run_id, workdir, profiler) as p:
                        rows += asyncio.run(_runner(part, imgs)(p))
            except KeyboardInterrupt:
                raise
            except Exception as err:
                traceback.print_exc()
                rows.append(Row(f"{part}: not measured", None, note=f"error: {err}"[:120]))
            log(f"--- {part} took {time.monotonic() - t0:.0f} s")
    finally:
        remove_baselines(run_id)
        imgs.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"servicectl benchmarks, run {run_id}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {_machine()}")
    print(f"code: {_tree()}")
    print(f"parts: {', '.join(parts)}; {time.monotonic() - started:.0f} s in all")
    print(f"load average: {load_before} before, {_load()} after (other work shares the machine)")
    print()
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
