#!/bin/sh
# hello's entry point: busybox httpd serving a greeting under $CONTEXT_ROOT on $PORT.
# servicectl sets CONTEXT_ROOT (/<project>-<service>, the path the gateway
# forwards unchanged) and PORT (the definition's container-port).
set -eu
root="${CONTEXT_ROOT:-}"
port="${PORT:-8080}"
www="/www${root}"
mkdir -p "$www"
cat > "$www/index.html" <<HTML
<!doctype html>
<title>hello</title>
<h1>${GREETING:-Hello from servicectl}</h1>
<p>Served under ${root:-/} on port ${port} by container $(hostname), up since $(date -u '+%Y-%m-%d %H:%M:%S') UTC.</p>
HTML
echo ok > "$www/healthz"
echo "hello: serving ${root:-/} on port ${port}"
# -f: stay in the foreground; -v: log every request (see `servicectl logs`)
exec httpd -f -v -p "$port" -h /www
