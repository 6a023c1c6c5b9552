#!/usr/bin/env bash
# Demo: round-robin dispatch. With no prefetch limit the broker deals tasks out
# in turn, like cards: with N workers, the worker that gets task i also gets
# tasks i+N, i+2N ..., whether or not it is still busy with the previous ones.
#
# Usage: scripts/demo-round-robin.sh [-h | --help] [WORKERS]     (default 3)
# Takes: about 10 s with 3 workers.
# Changes: re-creates the workers (WORKERS of them, no prefetch limit) and
# leaves them so; `docker compose up -d --scale consumer=3` brings back the
# default (prefetch 1). Stopped early (Ctrl+C), it brings it back itself. Saves the run as timelines/round-robin.json and .png.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 1 "" "$@"
workers="$(positive_whole_number WORKERS "${1:-3}")"
begin_demo
start_workers "$workers" 0
undo_on_exit "bringing back the workers' prefetch ($(setting PREFETCH), from .env)" \
  up --detach --wait --scale "consumer=$workers"
echo "==> Sending $((3 * workers)) equal tasks and waiting for them"
send_in_background "$((3 * workers))" --name round-robin
wait_for_sender
undo_on_exit  # done: the workers stay round-robin, as the last line says
echo
echo "==> Who got which task"
producer report.py round-robin timelines/round-robin.json
echo
echo "The workers keep running with no prefetch limit; docker compose up -d --scale consumer=3 brings back prefetch 1."
