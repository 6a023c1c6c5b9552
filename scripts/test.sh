#!/usr/bin/env bash
# Run the lab's tests in layers, each only if the one before passed: lint, the
# unit tests (no broker; the dashboard's model under Node too), then the whole
# stack through docker compose (a stack of the tests' own, with its own project
# name and ports). A lint or unit failure is told in seconds, before any stack.
#
# Usage: scripts/test.sh [-h | --help] [PATH...] [-- PYTEST_OPTIONS...]
#   scripts/test.sh                              every layer
#   scripts/test.sh tests/unit                   only these
#   scripts/test.sh tests/stack/test_faults.py -- -s
# Needs python3; the stack layer a running Docker engine with the Compose plugin.
# Takes: 7 to 10 minutes in all on two cores; tests/lint and tests/unit: seconds.
# Changes: installs the test requirements into .venv; the stack tests build the
# lab's images and run, then remove, stacks of their own (not the lab's).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
paths=()
while (($#)) && [[ "$1" != -- ]]; do
  [[ "$1" != -* ]] || fail "unknown option $1 (pytest's options go after --: scripts/test.sh -- $1)"
  paths+=("$1")
  shift
done
(($# == 0)) || shift  # the --
ensure_venv
pytest=(.venv/bin/python -m pytest)
if ((${#paths[@]} || $#)); then
  exec "${pytest[@]}" ${paths[@]+"${paths[@]}"} "$@"
fi
for layer in tests/lint tests/unit; do
  echo "==> $layer"
  "${pytest[@]}" "$layer"
done
echo "==> tests/stack"
# Four stacks at a time, a test module each (pytest-xdist), the longest modules first
# (tests/stack/conftest.py): the tests mostly wait on tasks and brokers. Measured on two
# cores in docs/testing.md.
exec "${pytest[@]}" tests/stack --numprocesses 4 --dist loadfile --no-loadscope-reorder
