#!/usr/bin/env bash
# Demo: a three-node cluster loses the node that leads task_queue. Its --help tells more (labctl/demos.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
run_host_python labctl.demos node-failure "$@"
