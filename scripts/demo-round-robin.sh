#!/usr/bin/env bash
# Demo: round-robin dispatch (no prefetch limit): tasks dealt in turn, like cards. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos round-robin "$@"
