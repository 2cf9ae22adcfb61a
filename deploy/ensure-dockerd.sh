#!/usr/bin/env bash
# Reuse a running Docker engine, or start dockerd in the background and wait
# until it answers. Its log goes to $SERVICECTL_DATA_DIR/log/dockerd.log.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${SERVICECTL_DATA_DIR:-var}

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-dockerd: dockerd is not installed (run deploy/bootstrap.sh)" >&2
    exit 1
fi
mkdir -p "$DATA_DIR/log"
echo "ensure-dockerd: starting dockerd (log: $DATA_DIR/log/dockerd.log)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# setsid: the engine must outlive this shell and not get the terminal's Ctrl-C.
$SUDO setsid nohup dockerd >>"$DATA_DIR/log/dockerd.log" 2>&1 < /dev/null &
for _ in $(seq 1 120); do
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        echo "ensure-dockerd: dockerd is up"
        exit 0
    fi
    sleep 0.5
done
echo "ensure-dockerd: dockerd did not come up within 60 s; see $DATA_DIR/log/dockerd.log" >&2
tail -n 20 "$DATA_DIR/log/dockerd.log" >&2 || true
exit 1
