"""Test applications: one tiny busybox image whose behaviour is chosen by environment.

MODE (default `serve`):
  serve        httpd under $CONTEXT_ROOT answering "$GREETING from $CONTEXT_ROOT"
  crash        print a few lines and exit with $EXIT_CODE (default 3)
  never-ready  print a line and sleep without listening
  crash-later  serve for $CRASH_AFTER seconds, then exit 1
  oom          serve, then after $OOM_AFTER s allocate far more than any memory limit
  sick-later   serve, but after $SICK_AFTER seconds /health/ answers 404
  count        serve, and print numbered lines, $COUNT_RATE per second
Built from Debian's static busybox; no registry is involved in building it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

IMAGE = "servicectl-test/app:latest"

RUN_SCRIPT = r"""#!/bin/sh
mkdir -p "/www$CONTEXT_ROOT/health"
echo "${GREETING:-hello} from $CONTEXT_ROOT" > "/www$CONTEXT_ROOT/index.html"
echo ok > "/www$CONTEXT_ROOT/health/index.html"
PORT=${PORT:-8080}
case "${MODE:-serve}" in
  crash)
    echo "starting up"
    echo "fatal: cannot connect to the database" >&2
    exit "${EXIT_CODE:-3}" ;;
  never-ready)
    echo "waiting forever without listening"
    exec sleep 100000 ;;
  crash-later)
    echo "serving $CONTEXT_ROOT on port $PORT until $CRASH_AFTER s"
    httpd -f -p "$PORT" -h /www &
    sleep "${CRASH_AFTER:-2}"
    echo "crashing now" >&2
    exit 1 ;;
  sick-later)
    echo "serving $CONTEXT_ROOT, sick after ${SICK_AFTER:-3} s"
    httpd -f -p "$PORT" -h /www &
    sleep "${SICK_AFTER:-3}"
    rm "/www$CONTEXT_ROOT/health/index.html"
    echo "health check will fail now" >&2
    wait ;;
  oom)
    echo "allocating too much memory after ${OOM_AFTER:-0} s"
    if [ "${OOM_AFTER:-0}" != 0 ]; then
      httpd -f -p "$PORT" -h /www &
      sleep "$OOM_AFTER"
    fi
    echo "allocating 400 MB now"
    exec dd if=/dev/zero of=/dev/null bs=400M count=1 ;;
  count)
    httpd -f -p "$PORT" -h /www &
    i=1
    while true; do echo "line $i"; i=$((i+1)); usleep "${COUNT_SLEEP_US:-10000}"; done ;;
  *)
    echo "serving $CONTEXT_ROOT on port $PORT"
    exec httpd -f -v -p "$PORT" -h /www ;;
esac
"""

DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY run.sh /run.sh
CMD ["/bin/sh", "/run.sh"]
"""


def build_context(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", directory / "busybox")
    (directory / "run.sh").write_text(RUN_SCRIPT)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    return directory


def build_image(directory: Path, tag: str = IMAGE) -> str:
    build_context(directory)
    r = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(directory)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"docker build failed: {r.stderr}")
    return tag
