#!/usr/bin/env bash
# Demo: a fixed pool of workers against one that scales itself (scripts/autoscale.sh),
# on the same bursty workload: a burst of tasks, a pause, a second burst. Prints the
# makespan, the worker-seconds (the pool's cost) and the tasks lost of each pool side
# by side, and saves them as one chart (docs/elastic.md).
#
# Usage: scripts/demo-elastic.sh [-h | --help] [--min N] [--max N] [--burst N] [--pause S]
#   scripts/demo-elastic.sh              fixed 1, fixed 6, then elastic 1 to 6
# Options: --min N (default 1), --max N (6), --burst N tasks of two dots (16),
#   --pause S seconds between the bursts (20).
# Takes: about three minutes with the defaults.
# Changes: the number of running workers (back to what it was at the end, Ctrl+C
# included); sends its tasks; saves the runs and timelines/elastic.png under timelines/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
for ((i = 1; i <= $#; i += 2)); do  # each option and its value's shape; the Python side checks the rest
  option="${!i}" next=$((i + 1))
  case "$option" in
    --min | --max | --burst | --pause) ;;
    *) refuse "$option" ;;
  esac
  ((next <= $#)) || fail "$option needs a whole number"
  [[ "${!next}" =~ ^[0-9]+$ ]] || fail "$option must be a whole number, got '${!next}'"
done
require_running_lab
ensure_venv producer/requirements.txt  # matplotlib for its chart, as the producer's image has it
run_host_python labctl.elastic_demo "$@"
