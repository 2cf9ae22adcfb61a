#!/usr/bin/env bash
# Install what is missing, and nothing more: Debian packages (docker.io,
# docker-registry, busybox-static, haproxy) and the project's virtualenv in .venv.
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# zsh and fish: the CLI's completion scripts are tested in them;
# iproute2: the multi-node test cluster's namespaces (deploy/cluster.py);
# chromium and chromium-driver: the dashboard's browser tests (Selenium)
PACKAGES=(docker.io docker-registry busybox-static haproxy zsh fish iproute2 chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.servicectl-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing the project and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    # clfpy is the compatibility contract; its own dependency list pins old
    # packages we do not need, so it is installed without them.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps clfpy
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check requests suds-community
    touch "$stamp"
fi
