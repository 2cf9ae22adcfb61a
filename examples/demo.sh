#!/usr/bin/env bash
# `make demo`: deploy examples/hello with the servicectl CLI on a running platform
# (`make up` in another shell), then show its URL, its answer and its logs.
#
# Safe to run again: the user is created only when it cannot log in, the service
# only when it does not exist, and the image tag is derived from the example's
# content, so an unchanged example is pushed as the same tag and simply redeployed.
#
# Settings (environment): SERVICECTL_API (default http://127.0.0.1:8080),
# DEMO_USER (demo), DEMO_PROJECT (demo), DEMO_PASSWORD (demo-password),
# DEMO_SERVICE (hello). servicectl-admin reaches NATS via SERVICECTL_NATS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
CLI="$VENV/bin/servicectl"
ADMIN="$VENV/bin/servicectl-admin"
API=${SERVICECTL_API:-http://127.0.0.1:8080}
USER_NAME=${DEMO_USER:-demo}
PROJECT=${DEMO_PROJECT:-demo}
PASSWORD=${DEMO_PASSWORD:-demo-password}
SERVICE=${DEMO_SERVICE:-hello}
EXAMPLE=examples/hello

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$CLI" ] || fail "$CLI not found: run \`make bootstrap\` (or \`make up\`) first"

step "Checking the platform at $API"
"$VENV/bin/python" - "$API" <<'PY' || fail "no servicectl API answers at $API: start it with \`make up\` in another shell"
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/healthz", timeout=5).read()
except OSError as err:
    sys.exit(f"demo: {err}")
PY

login() {
    printf '%s\n' "$PASSWORD" |
        "$CLI" login --api "$API" --user "$USER_NAME" --project "$PROJECT" --password-stdin
}
step "Logging in as $USER_NAME (project $PROJECT)"
if ! login 2>/dev/null; then
    echo "creating user $USER_NAME with servicectl-admin"
    printf '%s\n' "$PASSWORD" | "$ADMIN" add-user "$USER_NAME" --project "$PROJECT"
    login
fi

step "Creating service $SERVICE"
if "$CLI" status "$SERVICE" >/dev/null 2>&1; then
    echo "$SERVICE exists already"
else
    "$CLI" create "$SERVICE" --health-path /healthz --health-codes 200
fi

step "Building and pushing $EXAMPLE"
"$EXAMPLE/prepare.sh"
TAG="v-$(cat "$EXAMPLE/Dockerfile" "$EXAMPLE/serve.sh" "$EXAMPLE/busybox" | sha256sum | cut -c1-12)"
"$CLI" push "$SERVICE" "$EXAMPLE" --tag "$TAG"

step "Deploying $SERVICE:$TAG"
URL=$("$CLI" deploy "$SERVICE" --tag "$TAG" --memory-reservation 16 --memory-limit 32 \
    --env "GREETING=Hello from the servicectl demo")

step "$SERVICE answers at $URL/"
"$VENV/bin/python" - "$URL/" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
PY

step "Its status"
"$CLI" status "$SERVICE" --events 0

step "Its logs"
"$CLI" logs "$SERVICE" -n 10 || echo "(no logs from this API)"

cat <<TXT

You are logged in as $USER_NAME; try:
  $CLI logs $SERVICE -f          # follow the logs (Ctrl-C to stop)
  $CLI deploy $SERVICE --env GREETING=Bonjour
  $CLI revisions $SERVICE && $CLI rollback $SERVICE
  $CLI delete $SERVICE
TXT
