#!/usr/bin/env bash
# Validates template.yaml with cfn-lint (from PyPI, pinned, installed into
# .cache/cfn-lint on first run), then proves the check bites: a copy with a
# reference to a resource that does not exist must be rejected.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.58.0
VENV=.cache/cfn-lint
LINT="$VENV/bin/cfn-lint"

if ! "$LINT" --version 2>/dev/null | grep -qx "cfn-lint $VERSION"; then
  echo "cfn-lint: installing cfn-lint==$VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$VERSION" >&2
fi

"$LINT" template.yaml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The wake queue dead-letters to a queue that is not in the template.
sed 's/deadLetterTargetArn: !GetAtt WakeDeadLetterQueue.Arn/deadLetterTargetArn: !GetAtt NoSuchQueue.Arn/' \
  template.yaml > "$work/template.yaml"
if ! grep -q NoSuchQueue "$work/template.yaml"; then
  echo "cfn-lint: could not make the broken copy (template.yaml changed?)" >&2
  exit 1
fi
if "$LINT" "$work/template.yaml" > "$work/out" 2>&1; then
  echo "cfn-lint: a template referring to a missing resource was accepted" >&2
  exit 1
fi
if ! grep -q NoSuchQueue "$work/out"; then
  echo "cfn-lint: the broken copy failed, but not for the missing resource:" >&2
  cat "$work/out" >&2
  exit 1
fi
echo "cfn-lint $VERSION: template.yaml is valid, and a broken copy is rejected:"
sed 's/^/  /' "$work/out" | head -5
