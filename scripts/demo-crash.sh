#!/usr/bin/env bash
# Demo: a worker dies (SIGKILL) in the middle of a task; nothing is lost. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos crash "$@"
