#!/usr/bin/env bash
# Demo: a worker dies (SIGKILL) in the middle of a task. It never acknowledged
# the task, so the broker gives it to another worker, flagged as redelivered,
# and the batch completes: nothing is lost.
#
# Usage: scripts/demo-crash.sh [-h | --help]
# Takes: about 20 s.
# Changes: starts the lab if needed (3 workers, prefetch 1), kills a worker and
# starts it again; saves the run as timelines/crash.json and crash.png.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 0 "" "$@"
begin_demo
start_workers 3 1
# Looked up now: once a worker says it has Task 1, the kill must not wait for docker compose.
workers="$(docker compose ps --format '{{.Name}}' consumer)"
forget_faults crash
echo "==> Sending 6 tasks of 4 dots; a worker will be killed in the middle of Task 1"
send_in_background 6 --dots 4 --name crash

worker_running "Task 1...."
victim="$received_by"
container="$(grep -e "-$victim\$" <<<"$workers")"
# Half way through the task, timed from when the worker said it received it (the wait
# above sees the line a second or so late on a busy machine).
sleep "$(awk -v half="$(seconds_of_work 2)" -v gone="$(seconds_since "$received_at")" \
  'BEGIN { print (half > gone ? half - gone : 0) }')"
undo_on_exit "starting $victim again" start consumer
docker kill --signal KILL "$container" >/dev/null
docker wait "$container" >/dev/null  # until it has stopped: then FinishedAt is when it died
note_fault crash "$(docker inspect --format '{{.State.FinishedAt}}' "$container")" "killed $victim"
if docker logs --since "$received_at" "$container" 2>/dev/null | grep -qF "[x] Done 'Task 1....'"; then
  echo "==> Killed $victim (SIGKILL), but only after it said Task 1 was done (this machine is busy:"
  echo "    the kill came late), so Task 1 may not come back; run the demo again to see a redelivery"
else
  echo "==> Killed $victim (SIGKILL) half way through Task 1"
fi

wait_for_sender
echo
echo "==> Starting $victim again"
undo_on_exit
compose_or_stop start consumer
