#!/bin/sh
# Put a static busybox into this build context: the Dockerfile builds FROM scratch
# and copies it in, since no base image can be pulled. Safe to run again.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="${BUSYBOX:-/bin/busybox}"
if [ ! -x "$src" ]; then
    echo "prepare.sh: $src not found; install Debian's busybox-static (apt-get install busybox-static)" >&2
    exit 1
fi
if ! cmp -s "$src" "$here/busybox" 2>/dev/null; then
    cp "$src" "$here/busybox"
    chmod 0755 "$here/busybox"
fi
