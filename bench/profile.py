"""Optional profiling of the platform's Python processes while a benchmark phase runs.

With `python -m bench --profile DIR`, a part wraps its measured phase in
`Profiler.around(phase, pids)`: py-spy (PyPI `py-spy`, not a project
dependency) samples each process's main thread at 100 Hz until the phase
ends, writes the collapsed stacks to DIR/<phase>-<process>.txt and a summary
(share of samples per function, inclusive and self, platform code first) to
DIR/<phase>-<process>.summary.txt. Without --profile, or without py-spy, it
does nothing. It only reads the processes; it never changes them.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from bench.console import log

RATE_HZ = 100
OURS = ("services/", "shared/")


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.exe = py_spy() if directory is not None else None
        if directory is not None and self.exe is None:
            log("--profile: py-spy is not installed; `.venv/bin/pip install py-spy`")

    @property
    def on(self) -> bool:
        return self.directory is not None and self.exe is not None

    def start(
        self, phase: str, pids: Mapping[str, int]
    ) -> list[tuple[Path, subprocess.Popen[bytes]]]:
        if not self.on:
            return []
        assert self.directory is not None and self.exe is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        running = []
        for name, pid in pids.items():
            out = self.directory / f"{phase}-{name}.txt"
            argv = [self.exe, "record", "-p", str(pid), "-r", str(RATE_HZ), "-f", "raw"]
            argv += ["-o", str(out)]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            running.append((out, proc))
        return running

    def finish(self, running: list[tuple[Path, subprocess.Popen[bytes]]]) -> None:
        for out, proc in running:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                text = summarise(out.read_text())
                out.with_suffix(".summary.txt").write_text(text)
                head = "\n".join(text.splitlines()[:14])
                log(f"profile {out.name}:\n{head}")

    @contextlib.asynccontextmanager
    async def around(self, phase: str, pids: Mapping[str, int]) -> AsyncIterator[None]:
        running = self.start(phase, pids)
        try:
            yield
        finally:
            self.finish(running)


def summarise(raw: str, top: int = 40) -> str:
    """Inclusive and self shares of samples per function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if "run_forever" not in stack and "<module>" not in stack.split(";")[0]:
            continue  # idle helper threads
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples of the main thread at {RATE_HZ} Hz ({total / RATE_HZ:.1f} s busy)"]
    lines.append("-- platform code, inclusive")
    ours = [(f, n) for f, n in inclusive.most_common() if any(o in f for o in OURS)]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in ours[:top]]
    lines.append("-- every function, self")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("-- every function, inclusive")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
