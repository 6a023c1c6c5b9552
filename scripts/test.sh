#!/usr/bin/env bash
# Run the lab's tests: lint, unit tests, then the whole stack through docker
# compose (a stack of the tests' own, with its own project name and ports).
#
# Usage: scripts/test.sh [PATH...] [-- PYTEST_OPTIONS...]
#   e.g. scripts/test.sh tests/unit
#        scripts/test.sh tests/stack/test_faults.py -- -s
# Needs python3 and a running Docker engine with the Compose plugin.
# Takes: about twelve minutes in all; tests/lint and tests/unit: seconds.
# Changes: installs the test requirements into .venv; the stack tests build the
# lab's images and run, then remove, stacks of their own (not the lab's).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

if help_asked "$@"; then
  usage
  exit 0
fi
paths=()
while (($#)) && [[ "$1" != -- ]]; do
  [[ "$1" != -* ]] || fail "unknown option $1 (pytest's options go after --: scripts/test.sh -- $1)"
  paths+=("$1")
  shift
done
(($# == 0)) || shift  # the --
ensure_venv
exec .venv/bin/python -m pytest ${paths[@]+"${paths[@]}"} "$@"
