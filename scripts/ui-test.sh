#!/usr/bin/env bash
# End-to-end tests of the web UI in headless Chromium (tests/ui/ui.test.mjs):
# runs the real `durafn dev` and `durafn server`, drives the UI with
# playwright-core, and saves screenshots under test-output/ui/.
#
# Installs what is missing: Debian's chromium (apt-get), node + npm, and
# playwright-core (npm, pinned in tests/ui/package.json; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
APT_UPDATED=
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -q
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "ui-test: installing chromium (Debian package)"
  apt_install chromium fonts-liberation
  CHROMIUM_PATH=/usr/bin/chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ui-test: installing node and npm (Debian packages)"
  apt_install nodejs npm
fi

want=$(node -p "require('./tests/ui/package.json').devDependencies['playwright-core']")
have=$(node -p "try { require('./tests/ui/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
  echo "ui-test: installing playwright-core $want (npm)"
  (cd tests/ui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund --loglevel=error)
fi

# The real binaries, in the repo's own target/ (a no-op when they are fresh).
# UI_TEST_PREBUILT=1 uses target/debug/{durafn,order} as they are.
export CARGO_TARGET_DIR="$ROOT/target"
if [ "${UI_TEST_PREBUILT:-}" != 1 ]; then
  cargo build -q -p durafn-emulator -p order-example
fi

mkdir -p test-output/ui
UI_TEST_PIDFILE=$(mktemp)
export UI_TEST_PIDFILE CHROMIUM_PATH
cleanup() {
  # The durafn processes the tests started (by pid and process group), if the
  # tests could not stop them themselves.
  while read -r pid; do
    [ -n "$pid" ] || continue
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done <"$UI_TEST_PIDFILE"
  rm -f "$UI_TEST_PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd tests/ui
node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs
echo "ui-test: screenshots in test-output/ui/"
