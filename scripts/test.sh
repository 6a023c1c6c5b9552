#!/usr/bin/env bash
# Run the lab's tests: lint, unit tests, then the whole stack through docker
# compose (a stack of the tests' own, with its own project name and ports).
#
# Usage: scripts/test.sh [PYTEST_ARGS...]     e.g. scripts/test.sh tests/unit
# Needs python3 and a running Docker engine with the Compose plugin.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ensure_venv
exec .venv/bin/python -m pytest "$@"
