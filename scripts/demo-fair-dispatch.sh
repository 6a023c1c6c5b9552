#!/usr/bin/env bash
# Demo: fair dispatch (prefetch 1) against round-robin, on a skewed workload. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos fair-dispatch "$@"
