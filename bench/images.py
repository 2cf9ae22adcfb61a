"""The images the benchmarks run, built locally (nothing can be pulled from the internet).

`app`: Debian's static busybox in a scratch image. MODE chooses what it does:
  serve    busybox httpd under $CONTEXT_ROOT (closes every connection)
  flood    serve, and each time /tmp/go appears print `seq 1 $LINES` as fast as it can
  steady   serve, and once /tmp/go exists print $LINES lines "t <$EPOCHREALTIME> <i>",
           sleeping $SLEEP_US between them
`keepalive`: Caddy's static binary (from the venv) answering every path with 200
  `caddy respond`, a keep-alive upstream for the gateway benchmark.

Images are tagged `servicectl-bench/<name>:<run id>` and removed by `remove`.
This module only builds and removes images; it starts no container.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

APP_SCRIPT = r"""#!/bin/sh
mkdir -p "/www$CONTEXT_ROOT" /tmp
echo "${GREETING:-hello} from $CONTEXT_ROOT" > "/www$CONTEXT_ROOT/index.html"
PORT=${PORT:-8080}
wait_go() { while [ ! -e /tmp/go ]; do usleep 20000; done; }
case "${MODE:-serve}" in
  flood)
    httpd -f -p "$PORT" -h /www &
    while true; do
      wait_go
      rm /tmp/go
      seq 1 "${LINES:-100000}"
    done ;;
  steady)
    httpd -f -p "$PORT" -h /www &
    wait_go
    rm /tmp/go
    i=0
    n=${LINES:-1000}
    while [ "$i" -lt "$n" ]; do
      i=$((i+1))
      echo "t $EPOCHREALTIME $i"
      usleep "${SLEEP_US:-5000}"
    done
    wait ;;
  *)
    echo "serving $CONTEXT_ROOT on port $PORT"
    exec httpd -f -p "$PORT" -h /www ;;
esac
"""

APP_DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY run.sh /run.sh
CMD ["/bin/sh", "/run.sh"]
"""

KEEPALIVE_DOCKERFILE = """FROM scratch
COPY caddy /caddy
ENV HOME=/ XDG_CONFIG_HOME=/tmp XDG_DATA_HOME=/tmp
CMD ["/caddy", "respond", "--listen", ":8080", "hello"]
"""


def _build(context: Path, tag: str) -> str:
    r = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"docker build of {tag} failed: {r.stderr.strip()}")
    return tag


def build_app(workdir: Path, run_id: str) -> str:
    ctx = workdir / "app-image"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", ctx / "busybox")
    (ctx / "run.sh").write_text(APP_SCRIPT)
    (ctx / "Dockerfile").write_text(APP_DOCKERFILE)
    return _build(ctx, f"servicectl-bench/app:{run_id}")


def build_keepalive(workdir: Path, run_id: str) -> str:
    caddy = Path(sys.executable).parent / "caddy"
    if not caddy.exists():
        raise RuntimeError(f"no caddy binary at {caddy}: run `make bootstrap`")
    ctx = workdir / "keepalive-image"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy(caddy, ctx / "caddy")
    (ctx / "Dockerfile").write_text(KEEPALIVE_DOCKERFILE)
    return _build(ctx, f"servicectl-bench/keepalive:{run_id}")


def remove(tags: list[str]) -> None:
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
