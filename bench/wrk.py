"""wrk, the HTTP load generator: make sure it is installed, run it, read its figures.

`ensure` installs Debian's `wrk` with apt-get when it is missing and we are
root, and says so on stderr; otherwise it explains what to install. `run`
returns requests/s, p50/p99 latency and error counts parsed from
`wrk --latency` output. Nothing else here touches the system.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.console import log

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class WrkMissing(RuntimeError):
    pass


def ensure() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        log("wrk is missing and we are not root: `sudo apt-get install wrk`")
        return
    log("wrk is missing: installing Debian's `wrk` package with apt-get (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            log(f"apt-get install wrk failed: {r.stderr.strip()[-300:]}")
            return
    log(f"installed wrk at {shutil.which('wrk')}")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> WrkResult:
    dist = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    if rps is None or total is None or "50" not in dist or "99" not in dist:
        raise ValueError(f"cannot read wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(dist["50"]),
        p99_ms=_ms(dist["99"]),
        requests=int(total.group(1)),
        errors=errors,
    )


def paths_script(directory: Path, paths: Sequence[str]) -> Path:
    """A wrk Lua script that requests a random one of `paths` each time."""
    listed = ",".join(json.dumps(p) for p in paths)  # JSON strings are valid Lua strings here
    script = directory / "paths.lua"
    script.write_text(
        f"local paths = {{{listed}}}\n"
        "request = function()\n"
        "  return wrk.format(nil, paths[math.random(#paths)])\n"
        "end\n"
    )
    return script


def run(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    exe = shutil.which("wrk")
    if exe is None:
        raise WrkMissing("wrk is not installed (Debian package `wrk`)")
    argv = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    argv.append("--latency")
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed: {r.stderr.strip()}")
    return parse(r.stdout)
