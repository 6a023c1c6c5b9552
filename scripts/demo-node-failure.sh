#!/usr/bin/env bash
# Demo: a three-node cluster loses the node that leads task_queue (SIGKILL) in
# the middle of a batch. task_queue has a member on every node: the two left
# are a majority, elect a new leader and go on; the workers that were connected
# to the dead node move to the others; nothing confirmed is lost. Then the node
# starts again and catches up.
#
# Usage: scripts/demo-node-failure.sh [-h | --help]    (uses compose.cluster.yaml; see docs/cluster.md)
# Takes: about two minutes (more the first time: the cluster starts).
# Changes: turns the lab into a three-node cluster (and leaves it one), kills
# the node that leads task_queue and starts it again; saves the run as
# timelines/node-failure.json and node-failure.png.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 0 "" "$@"

leader_other_than() {  # leader_other_than NODE: task_queue has a leader, and it is not NODE
  local now_leading
  now_leading="$(task_queue_leader || true)"
  [[ -n "$now_leading" && "$now_leading" != "$1" ]]
}

begin_demo
use_cluster
echo "==> A cluster of three nodes (${CLUSTER_NODES// /, }) and 3 workers"
lab_up --scale consumer=3
task_queue_members

forget_faults node-failure
echo "==> Sending 30 tasks of 2 dots; the node that leads task_queue will be killed in the middle"
# RabbitMQ 4.3 gives back the tasks held by a dead node's workers after 60 s
# (consumer_disconnected_timeout): the timeout leaves them room.
send_in_background 30 --dots 2 --name node-failure --timeout 600
worker_running "Task 10.."
leader="$(task_queue_leader)"
container="$(docker compose ps --quiet "$leader")"
killed_at="$(now)"
since_kill="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
undo_on_exit "starting $leader again" start "$leader"
docker kill --signal KILL "$container" >/dev/null
docker wait "$container" >/dev/null
note_fault node-failure "$(docker inspect --format '{{.State.FinishedAt}}' "$container")" "killed $leader"
echo "==> Killed $leader (SIGKILL), the leader of task_queue"

wait_until "a new leader of task_queue" leader_other_than "$leader"
new_leader="$(task_queue_leader)"
echo "==> New leader of task_queue: $new_leader ($(awk -v since="$killed_at" -v now="$(now)" \
  'BEGIN { printf "%.1f", now - since }') s after the kill, as seen here)"

wait_for_sender
echo
echo "==> Workers that moved to another node:"
docker compose logs --no-color --no-log-prefix --since "$since_kill" consumer | grep "connected to" \
  || echo "  (none: no worker was connected to $leader)"
echo
echo "==> Starting $leader again"
undo_on_exit
compose_or_stop start "$leader"
wait_until "$leader to catch up" task_queue_in_sync
echo "==> $leader rejoined: task_queue has three members in sync (the same commit index)"
task_queue_members
