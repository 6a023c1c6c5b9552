#!/usr/bin/env bash
# Demo: the broker restarts in the middle of a batch; every task is done anyway. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos restart "$@"
