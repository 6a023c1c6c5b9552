#!/usr/bin/env bash
# Check your own worker: runs your command (e.g. `python worker.py`) in several
# copies against the running lab and checks what the course teaches, each
# check with what it saw and, when it fails, the fix; the verdicts come from
# what the broker shows (which copy holds which task, unacknowledged):
#   1. it takes and finishes tasks (each copy some, all acknowledged)
#   2. it acknowledges after the work (the copy holding a task is killed
#      mid-task: the task must come back and be done by another copy)
#   3. fair dispatch (no task held behind another while a copy idles: prefetch 1)
#   4. the queue is durable (and, with --producer, your messages persistent)
#   5. beyond the tutorial, a warning only: back after a broker restart?
#      a task in hand survives SIGTERM?
#
# Usage: scripts/check-worker.sh [-h | --help] [OPTIONS] -- COMMAND...
#   scripts/check-worker.sh -- python worker.py
#   scripts/check-worker.sh --copies 3 -- node worker.js
#   scripts/check-worker.sh --producer "python new_task.py" -- python worker.py
#   scripts/check-worker.sh --class ~/students --quick -- python worker.py
# Options:
#   --copies N          copies of your worker to run at once (1 to 8, default 2)
#   --producer COMMAND  also run your producer once (COMMAND split as a shell
#                       would, not run by one) and check its message is persistent
#   --quick             leave out check 5 (no broker restart)
#   --strict            check 5's warnings fail the run too
#   --name NAME         save the run as timelines/NAME.json and NAME.png
#                       (default check-worker; letters, digits, - and _)
#   --container         run each copy in a throwaway container (Python with pika,
#                       or Node with amqplib), not on this machine
#   --class DIR         an instructor's run: the check for each folder in DIR (one
#                       student each), in containers; a folder without the file
#                       COMMAND names is reported missing
#   --out DIR           with --class: where the reports go (default
#                       ./check-worker-report): results.csv, summary.md,
#                       junit.xml, manifest.json, students/NAME/
#   --on-host           with --class: run the students' code on this machine
# Run it from your own folder, with the lab up: your command runs there, on this
# machine, as you run it; it connects to localhost:AMQP_PORT with the lab's login.
# Exit status: 0 when checks 1-4 pass (with --class: for every student), 1 when
# one does not (or the check cannot run, or another check runs), 2 for bad arguments.
# Takes: about 35 s (--quick: about 20 s) a worker; every check has a deadline.
# Changes: stops the lab's workers for the duration (docker compose stop
# consumer) and starts them again after, whatever happens (Ctrl+C included);
# sends tasks of its own to task_queue and removes any left; check 5 restarts
# the broker; saves the run under timelines/. It refuses to start while
# task_queue holds tasks, or while another check runs against the lab.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
options=()
while (($#)) && [[ "$1" != -- ]]; do
  case "$1" in
    --copies)
      (($# >= 2)) || fail "--copies needs a number"
      copies="$(positive_whole_number --copies "$2")"
      ((copies <= 8)) || fail "--copies takes 1 to 8, got $2"
      options+=(--copies "$copies"); shift 2 ;;
    --producer)
      (($# >= 2)) || fail "$1 needs a value"
      [[ -n "${2//[[:space:]]/}" ]] || fail "$1 needs a value, got an empty one"
      options+=("$1" "$2"); shift 2 ;;
    --name)
      (($# >= 2)) || fail "$1 needs a value"
      # A file name under timelines/: no path, nothing a shell or a terminal would read otherwise.
      [[ "$2" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] \
        || fail "--name takes 1 to 64 letters, digits, '-' or '_', starting with a letter or digit"
      options+=("$1" "$2"); shift 2 ;;
    --quick | --strict) options+=("$1"); shift ;;
    --container) container=1; shift ;;
    --on-host) on_host=1; shift ;;
    --class | --out)
      (($# >= 2)) || fail "$1 needs a folder"
      [[ -n "$2" ]] || fail "$1 needs a folder, got an empty one"
      if [[ "$1" == --class ]]; then class_dir="$(from_caller "$2")"; else out_dir="$(from_caller "$2")"; fi
      shift 2 ;;
    -?*) refuse "$1" ;;
    *) fail "put the command that runs your worker after --, e.g. scripts/check-worker.sh -- python worker.py" ;;
  esac
done
(($# >= 2)) || fail "give the command that runs your worker after --, e.g. scripts/check-worker.sh -- python worker.py"
shift  # the --
if [[ -n "${class_dir:-}" ]]; then
  [[ -d "$class_dir" ]] || fail "--class $class_dir: no such folder"
  [[ -z "${container:-}" ]] || fail "--container is the default with --class (--on-host runs the students' code here)"
  for option in "${options[@]}"; do
    [[ "$option" != --producer && "$option" != --name ]] || fail "$option is for one worker's check, not with --class"
  done
  out_dir="${out_dir:-$CALLER_DIR/check-worker-report}"
  if [[ -n "${on_host:-}" ]]; then options+=(--on-host); fi
  runner=(.venv/bin/python -m checker.classroom --class "$class_dir" --out "$out_dir")
else
  [[ -z "${out_dir:-}${on_host:-}" ]] || fail "--out and --on-host go with --class DIR"
  if [[ -n "${container:-}" ]]; then options+=(--container); fi
  runner=(.venv/bin/python -m checker)
fi

require_running_lab
ensure_venv producer/requirements.txt  # pika and matplotlib, as the producer's image has them
checker=(.venv/bin/python -m checker)
export PYTHONPATH="producer:."
if [[ -z "${class_dir:-}" ]]; then  # a class's folders are each checked in turn (classroom.py)
  "${checker[@]}" --refuse-if-missing "$CALLER_DIR" -- "$@"
fi
if [[ -n "${container:-}" || ( -n "${class_dir:-}" && -z "${on_host:-}" ) ]]; then
  .venv/bin/python -m checker.sandbox "$@"  # the containers' image for the command (built once), or why none
fi

# One run at a time per lab: a second one refuses and touches nothing (not even the workers).
lock=".venv/check-worker-${COMPOSE_PROJECT_NAME:-lab}.lock"
if ! mkdir "$lock" 2>/dev/null; then
  holder="$(cat "$lock/pid" 2>/dev/null || true)"
  if [[ -n "$holder" ]] && kill -0 "$holder" 2>/dev/null; then
    fail "another check-worker.sh is running (process $holder) against this lab: wait for it to end, then run this again" 1
  fi
  rm -rf "$lock"  # left by a run that was killed outright
  mkdir "$lock" || fail "cannot take $lock: another check-worker.sh may have just started" 1
fi
echo "$$" >"$lock/pid"
trap 'rm -rf "$lock"' EXIT

workers="$(running_workers)"
# For the orchestrator (checker/), run here; it runs the command where the caller stands.
AMQP_PORT="$(setting AMQP_PORT)"
LAB_BIND_ADDRESS="$(setting LAB_BIND_ADDRESS)"
RABBITMQ_DEFAULT_USER="$(setting RABBITMQ_DEFAULT_USER)"
RABBITMQ_DEFAULT_PASS="$(setting RABBITMQ_DEFAULT_PASS)"
# Not TIMELINES_DIR: compose.yaml reads it (the orchestrator saves to timelines/ without it).
export AMQP_PORT LAB_BIND_ADDRESS RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS CHECK_FROM="$CALLER_DIR"
"${checker[@]}" --refuse-if-busy  # task_queue holds tasks: they are not the check's to take

# shellcheck disable=SC2329  # run by the EXIT trap
restore_workers() {  # the EXIT trap: the lab's workers back as they were
  local status=$?
  trap '' INT TERM HUP  # a second Ctrl+C must not cut this short
  trap - EXIT
  if [[ -n "${checking:-}" ]]; then  # the orchestrator ends the copies it started
    # The signal that stopped this script first, for the orchestrator to name (Ctrl+C: it said
    # SIGTERM in one loaded run), then SIGTERM, which ends it even before it sets its handlers
    # (a background job starts with SIGINT ignored). It names the first signal it handles.
    if ((status > 128)); then kill "-$((status - 128))" "$checking" 2>/dev/null || true; fi
    kill -TERM "$checking" 2>/dev/null || true
    wait "$checking" 2>/dev/null || true
  fi
  if ((workers > 0)); then
    echo "==> Starting the lab's $workers workers again"
    # In a session of its own (checker/detached.py): no signal from the terminal reaches it.
    .venv/bin/python -m checker.detached bash -c 'source scripts/lib.sh && compose_quietly "$@"' restore \
      up --detach --wait --wait-timeout "$WAIT_SECONDS" --no-recreate --scale "consumer=$workers" \
      || { echo "==> That failed; run: docker compose up -d --scale consumer=$workers" >&2; status=1; }
    echo "==> They run in the background now: a 'docker compose up' in another terminal no longer shows" \
      "their lines; follow them with: docker compose logs --follow consumer"
  fi
  rm -rf "$lock"
  exit "$status"
}
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap restore_workers EXIT
if ((workers > 0)); then
  echo "==> Stopping the lab's $workers workers for the check (they come back after)"
  compose_or_stop stop consumer
fi

# In the background, so that a signal's trap runs at once; it ends its copies on SIGTERM.
"${runner[@]}" ${options[@]+"${options[@]}"} -- "$@" &
checking=$!
status=0
wait "$checking" || status=$?
checking=""
exit "$status"
