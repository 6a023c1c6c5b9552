#!/usr/bin/env bash
# Demo: a work queue and a stream on the same tasks: workers compete, readers each read all. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos stream "$@"
