#!/usr/bin/env bash
# Demo: the broker restarts in the middle of a batch. Queued tasks are on disk
# (a durable quorum queue, persistent messages); tasks in progress were never
# acknowledged, so they are delivered again; the workers and send.sh
# reconnect by themselves. Every task is done anyway.
#
# Usage: scripts/demo-restart.sh [-h | --help]
# Takes: about half a minute.
# Changes: starts the lab if needed (3 workers, prefetch 1) and restarts the
# broker; saves the run as timelines/restart.json and restart.png.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 0 "" "$@"
begin_demo
start_workers 3 1
forget_faults restart
echo "==> Sending 12 tasks of 4 dots; the broker will restart in the middle of the batch"
send_in_background 12 --dots 4 --name restart

worker_running "Task 4...."
sleep "$(seconds_of_work 2)"  # the second round of tasks is half done
echo "==> Restarting the broker (docker compose restart rabbitmq)"
note_fault restart "$(now)" "broker restarting"
undo_on_exit "starting the broker, in case the restart was cut short" start rabbitmq
compose_or_stop restart rabbitmq
undo_on_exit
started="$(docker inspect --format '{{.State.StartedAt}}' "$(docker compose ps --quiet rabbitmq)")"
note_fault restart "$started" "broker started again"
echo "==> The broker is back; the workers reconnect"
wait_for_sender
