#!/usr/bin/env bash
# Demo: round-robin dispatch. With no prefetch limit the broker deals tasks out
# in turn, like cards: with N workers, worker i gets tasks i, i+N, i+2N ...,
# whether or not it is still busy with the previous ones.
#
# Usage: scripts/demo-round-robin.sh [WORKERS]     (default 3)
# Leaves the workers running with no prefetch limit; `docker compose up -d
# --scale consumer=3` brings back the default (prefetch 1).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

workers="$(positive_whole_number WORKERS "${1:-3}")"
start_workers "$workers" 0
echo "==> Sending $((3 * workers)) equal tasks and waiting for them"
scripts/send.sh "$((3 * workers))" --wait --name round-robin
echo
echo "==> Who got which task"
producer report.py round-robin timelines/round-robin.json
