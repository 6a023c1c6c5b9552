#!/usr/bin/env bash
# Run the lab's tests: unit tests, then the whole stack through docker compose
# (a stack of the tests' own, with its own project name and ports).
#
# Usage: scripts/test.sh [PYTEST_ARGS...]     e.g. scripts/test.sh tests/unit
# Needs python3 and a running Docker engine with the Compose plugin.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
exec .venv/bin/python -m pytest "$@"
