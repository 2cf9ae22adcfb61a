"""Machine-level operations for the test cluster: commands, namespaces, processes, cgroups.

Small, forgiving helpers that `deploy.cluster` composes: find the processes
of a network namespace or a cgroup subtree, kill them, remove cgroups, read
the root namespace's mount table, pipe one command into several. They touch
only what they are given (never the machine's default dockerd, its socket or
/var/lib/docker) and know nothing of Docker beyond its `/_ping`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The docker CLI must talk to the engine named by -H, whatever the caller's shell says.
_DOCKER_ENV_DROP = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


class HostError(RuntimeError):
    """A command failed; the message has the command and its stderr."""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _DOCKER_ENV_DROP}


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise HostError if `check` and it fails."""
    try:
        r = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
        )
    except subprocess.TimeoutExpired as err:
        raise HostError(f"{' '.join(argv)}: no answer within {timeout} s") from err
    if check and r.returncode != 0:
        raise HostError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def fan_out(source: Sequence[str], sinks: Mapping[str, Sequence[str]]) -> list[str]:
    """Pipe the output of `source` into every sink command; returns what failed (empty: none)."""
    env = clean_env()
    procs = {
        name: subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for name, argv in sinks.items()
    }
    src = subprocess.Popen(list(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert src.stdout is not None
    open_sinks = {name: p.stdin for name, p in procs.items() if p.stdin is not None}
    with src.stdout:
        while chunk := src.stdout.read(1 << 20):
            for name, pipe in list(open_sinks.items()):
                try:
                    pipe.write(chunk)
                except BrokenPipeError:  # that sink failed; its stderr says why
                    del open_sinks[name]
    _, src_err = src.communicate()
    failed = [] if src.returncode == 0 else [f"{' '.join(source)}: {src_err.decode().strip()}"]
    for name, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"{name}: {err.decode(errors='replace').strip()}")
    return failed


def netns_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _ns_id(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in_netns(names: Iterable[str]) -> set[int]:
    """Every process whose network namespace is one of `names` (like `ip netns pids`)."""
    wanted = {ns for ns in (_ns_id(NETNS_DIR / name) for name in names) if ns is not None}
    if not wanted:
        return set()
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ns_id(f"/proc/{entry}/ns/net") in wanted:
            found.add(int(entry))
    found.discard(os.getpid())
    return found


def _hierarchies() -> list[Path]:
    """Each mounted cgroup hierarchy once (v1: one per directory; v2 only: the root)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    found: list[Path] = []
    try:
        entries = sorted(CGROUP_ROOT.iterdir())
    except OSError:
        return []
    for entry in entries:
        real = entry.resolve()  # cpu and cpuacct may be links to one hierarchy
        if real not in found and (real / "cgroup.procs").exists():
            found.append(real)
    return found


def cgroup_trees(pattern: re.Pattern[str]) -> list[Path]:
    """The top-level cgroups, in every hierarchy, whose name matches `pattern`."""
    trees: list[Path] = []
    for hierarchy in _hierarchies():
        with contextlib.suppress(OSError):
            trees.extend(
                p for p in sorted(hierarchy.iterdir()) if p.is_dir() and pattern.match(p.name)
            )
    return trees


def pids_in_cgroups(trees: Iterable[Path]) -> set[int]:
    found: set[int] = set()
    for tree in trees:
        for procs in tree.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in procs.read_text().split())
    found.discard(os.getpid())
    return found


# What a node runs; a shell that merely names a file of the cluster is not the cluster's.
_CLUSTER_PROGRAMS = frozenset(
    {
        "dockerd",
        "sc-dockerd",
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "docker-proxy",
    }
    | {"runc", "sh", "nsenter", "unshare"}
)


def pids_with_argument(fragment: str) -> set[int]:
    """Cluster programs (dockerd, containerd, shims...) with `fragment` in an argument."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        argv = command_line(int(entry))
        if argv and os.path.basename(argv[0]) in _CLUSTER_PROGRAMS:
            if any(fragment in arg for arg in argv[1:]):
                found.add(int(entry))
    return found


def kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def remove_cgroup_tree(tree: Path) -> bool:
    """rmdir the tree bottom-up; False if some cgroup is still busy."""
    if not tree.exists():
        return True
    dirs = sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    ok = True
    for d in [*dirs, tree]:
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            ok = False
    return ok


def mounts_under(prefixes: Iterable[Path]) -> list[str]:
    """Mount points of the root mount namespace inside any of `prefixes`."""
    roots = [str(p).rstrip("/") for p in prefixes]
    found: list[str] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        if any(point == r or point.startswith(r + "/") for r in roots):
            found.append(point)
    return found


def interface_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def addresses_in_use(prefix: str) -> list[str]:
    """Root-namespace interfaces that hold an address starting with `prefix` (e.g. "10.251.0.")."""
    r = run(["ip", "-o", "-4", "addr", "show"], check=False)
    return [line.split()[1] for line in r.stdout.splitlines() if f" {prefix}" in line]


def docker_ping(socket_path: Path, timeout: float = 0.5) -> bool:
    """True if a dockerd answers `GET /_ping` on the unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(socket_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.") and data.rstrip().endswith(b"OK")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call `check()` until it returns true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
