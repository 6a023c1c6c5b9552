#!/usr/bin/env bash
# The lab's history (the stream lab.history): every event, one line each, from any offset. Its --help tells more (labctl/history.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.history "$@"
