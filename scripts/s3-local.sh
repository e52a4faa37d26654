#!/usr/bin/env bash
# Starts and stops a local S3-compatible server (s3rver) for the blob store tests.
#
#   eval "$(scripts/s3-local.sh start)"   # installs if needed, starts, waits
#   scripts/s3-local.sh stop "$S3_LOCAL_PID"
#
# `start` installs the npm package s3rver under <repo>/.cache/s3rver, starts it
# on a free port with its files in a fresh temporary folder, waits until it
# answers, and prints exactly two lines to stdout:
#   export DURAFN_S3_TEST_ENDPOINT=http://127.0.0.1:PORT
#   export S3_LOCAL_PID=PID
# Everything else goes to stderr. It exits non-zero if s3rver cannot start.
set -euo pipefail

NPM_PACKAGE="s3rver@3.7.1"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${S3_LOCAL_CACHE:-$REPO/.cache/s3rver}"
LOG="${S3_LOCAL_LOG:-${TMPDIR:-/tmp}/durafn-s3-local.$$.log}"
START_TIMEOUT_SECS="${S3_LOCAL_START_TIMEOUT:-30}"

say() { echo "s3-local: $*" >&2; }
die() { say "error: $*"; exit 1; }

bin() { echo "$CACHE/node_modules/s3rver/bin/s3rver.js"; }

install() {
  if [ -f "$(bin)" ]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is not installed; it is needed to install s3rver"
  mkdir -p "$CACHE"
  say "installing $NPM_PACKAGE into $CACHE (first run only)"
  npm install --no-save --no-audit --no-fund --prefix "$CACHE" "$NPM_PACKAGE" >&2 \
    || die "npm install $NPM_PACKAGE failed"
  [ -f "$(bin)" ] || die "$NPM_PACKAGE installed but $(bin) is missing"
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# True once s3rver answers an (anonymous) ListBuckets with any HTTP status.
answers() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null || true)"
  [ -n "$code" ] && [ "$code" != "000" ]
}

start() {
  command -v node >/dev/null || die "node is not installed; s3rver needs it"
  command -v curl >/dev/null || die "curl is not installed; it is needed to check s3rver is up"
  install
  local dir port pid waited
  dir="$(mktemp -d "${TMPDIR:-/tmp}/durafn-s3rver.XXXXXX")"
  for _try in 1 2 3; do
    port="$(free_port)"
    say "starting s3rver on port $port, files in $dir (log: $LOG)"
    # A test server: signatures are not what is under test, and buckets are
    # addressed path-style (as the S3 backend does with an endpoint).
    node "$(bin)" --directory "$dir" --address 127.0.0.1 --port "$port" --silent \
      --allow-mismatched-signatures --no-vhost-buckets \
      >"$LOG" 2>&1 </dev/null &
    pid=$!
    # `stop PID` deletes the server's files too.
    echo "$dir" >"$CACHE/data-of-$pid"
    waited=0
    while [ "$waited" -lt $((START_TIMEOUT_SECS * 5)) ]; do
      kill -0 "$pid" 2>/dev/null || break
      if answers "$port"; then
        say "ready on port $port (pid $pid)"
        echo "export DURAFN_S3_TEST_ENDPOINT=http://127.0.0.1:$port"
        echo "export S3_LOCAL_PID=$pid"
        return 0
      fi
      sleep 0.2
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      cat "$LOG" >&2 || true
      die "s3rver did not answer within ${START_TIMEOUT_SECS}s"
    fi
    say "s3rver exited early; its log:"
    cat "$LOG" >&2 || true
  done
  die "s3rver could not start (see the log above)"
}

stop() {
  local pid="${1:-}"
  if [ -z "$pid" ]; then
    say "stop: no pid given, nothing to stop"
    return 0
  fi
  case "$pid" in
    *[!0-9]*) die "stop: $pid is not a pid" ;;
  esac
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      say "killed pid $pid"
    else
      say "stopped pid $pid"
    fi
  else
    say "pid $pid is not running"
  fi
  local data="$CACHE/data-of-$pid"
  if [ -f "$data" ]; then
    rm -rf -- "$(cat "$data")"
    rm -f -- "$data"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  install) install ;;
  *)
    echo "usage: $0 start | stop PID | install" >&2
    exit 2
    ;;
esac
