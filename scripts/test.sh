#!/usr/bin/env bash
# Run the lab's tests in layers, each only if the one before passed: lint, the
# unit tests (no broker), then the whole stack through docker compose (a stack
# of the tests' own, with its own project name and ports). A lint or unit test
# failure is told in seconds, before any stack is built.
#
# Usage: scripts/test.sh                      every layer
#        scripts/test.sh [PYTEST_ARGS...]     only these, e.g. scripts/test.sh tests/unit
# Needs python3; the stack layer a running Docker engine with the Compose plugin.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ensure_venv
pytest=(.venv/bin/python -m pytest)
if (($#)); then
  exec "${pytest[@]}" "$@"
fi
for layer in tests/lint tests/unit; do
  echo "==> $layer"
  "${pytest[@]}" "$layer"
done
echo "==> tests/stack"
exec "${pytest[@]}" tests/stack
