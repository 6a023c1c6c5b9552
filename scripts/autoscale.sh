#!/usr/bin/env bash
# Autoscale the lab's workers from task_queue, as KEDA and HPA do on Kubernetes:
# ceil(messages / per-worker) workers within --min and --max, up at once, down
# only to the highest recommendation of the last --down-after seconds
# (docs/elastic.md). Runs in the foreground beside the running lab, on this
# machine; Ctrl+C ends it and leaves the pool as it is.
#
# Usage: scripts/autoscale.sh [-h | --help] [--min N] [--max N] [--per-worker N]
#                             [--every S] [--down-after S] [--activation N]
#   scripts/autoscale.sh                                  1 to 6 workers, 4 messages each
#   scripts/autoscale.sh --min 0 --max 4 --down-after 60  a pool that sleeps when idle
# Options (defaults in brackets):
#   --min N          fewest workers [1]; 0 lets the pool sleep when idle
#   --max N          most workers [6]
#   --per-worker N   messages (ready + unacknowledged) per worker [4]
#   --every S        seconds between two readings of task_queue [5]
#   --down-after S   a scale-down waits until the last S seconds asked for no more
#                    [30]; at least 5 (task_queue's unacknowledged count lags 5 s)
#   --activation N   a pool of 0 wakes when messages exceed N [0]
# Exit status: 0 when ended by Ctrl+C, 1 when it cannot run, 2 for bad arguments.
# Takes: until you end it.
# Changes: the number of running workers (docker compose up -d --no-recreate
# --scale consumer=N); publishes its decisions to lab.events; installs pika into .venv.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
# Each option and the shape of its value, before anything is set up; the Python side checks
# the rest (--max at least --min, --down-after at least 5, ...).
for ((i = 1; i <= $#; i += 2)); do
  option="${!i}" next=$((i + 1))
  case "$option" in
    --min | --max | --per-worker | --activation) pattern='^[0-9]+$' what="a whole number" ;;
    --every | --down-after) pattern='^[0-9]+(\.[0-9]+)?$' what="a number of seconds" ;;
    *) refuse "$option" ;;
  esac
  ((next <= $#)) || fail "$option needs $what"
  [[ "${!next}" =~ $pattern ]] || fail "$option must be $what, got '${!next}'"
done
run_host_python labctl.autoscale "$@"
