#!/usr/bin/env bash
# Demo: fair dispatch (prefetch 1) against round-robin, on a skewed workload:
# every N-th of 3N tasks is six times heavier. Round-robin deals every heavy
# task to the same worker; with prefetch 1 a busy worker gets no new task, so
# the heavy ones spread out. Runs the same tasks on the same workers twice and
# prints the two side by side: load per worker, makespan, the lower bound
# max(total work / N, longest task) and each makespan's ratio to it.
#
# Usage: scripts/demo-fair-dispatch.sh [-h | --help] [WORKERS]     (default 3)
# Takes: about 40 s with 3 workers.
# Changes: re-creates the workers twice (WORKERS of them, no prefetch limit,
# then prefetch 1); saves the runs under timelines/. Stopped early (Ctrl+C), it
# gives the workers back the prefetch of .env.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 1 "" "$@"
workers="$(positive_whole_number WORKERS "${1:-3}")"
begin_demo
workload=("$((3 * workers))" --heavy "$workers:6")

start_workers "$workers" 0
# Stopped before the fair half, the workers would stay round-robin for the student's next send.
undo_on_exit "bringing back the workers' prefetch ($(setting PREFETCH), from .env)" \
  up --detach --wait --scale "consumer=$workers"
echo "==> Round-robin: $((3 * workers)) tasks; tasks $workers, $((2 * workers)) and $((3 * workers)) are six times heavier"
send_in_background "${workload[@]}" --name round-robin-skewed
wait_for_sender
echo
start_workers "$workers" 1
undo_on_exit
echo "==> Fair dispatch: the same tasks"
send_in_background "${workload[@]}" --name fair-skewed
wait_for_sender
echo
echo "==> Side by side"
producer report.py compare timelines/round-robin-skewed.json timelines/fair-skewed.json --name fair-dispatch
