#!/bin/bash
# Start RabbitMQ and, once it runs, set the lab's policy for task_queue:
# a task a worker rejects, or one delivered too many times, is dead-lettered
# to the `dead_letters` exchange instead of looping forever. A policy rather
# than queue arguments keeps task_queue declarable by the official tutorial's
# scripts (x-queue-type: quorum and nothing else). The policy also sets
# task_queue's consumer timeout above the longest task.
set -euo pipefail

readonly POLICY_SET=/tmp/lab-policy-set  # the healthcheck waits for it
# The broker takes back a task not acknowledged within the consumer timeout
# (30 min by default): keep it a minute above the longest task the lab accepts.
CONSUMER_TIMEOUT_MS="$(awk -v dots="${MAX_DOTS_PER_TASK:-3600}" -v per_dot="${SECONDS_PER_DOT:-1}" \
  'BEGIN { printf "%d", (dots * per_dot + 60) * 1000 }')"
readonly CONSUMER_TIMEOUT_MS
readonly TASK_QUEUE_POLICY='{
  "dead-letter-exchange": "dead_letters",
  "dead-letter-strategy": "at-least-once",
  "overflow": "reject-publish",
  "delivery-limit": 20,
  "consumer-timeout": '"$CONSUMER_TIMEOUT_MS"'
}'

set_policy() {
  # await_startup waits for a booting node, but fails at once if the node's VM is not up yet.
  until rabbitmqctl --quiet await_startup >/dev/null 2>&1; do sleep 2; done
  rabbitmqctl --quiet set_policy --apply-to quorum_queues task-queue '^task_queue$' "$TASK_QUEUE_POLICY" >/dev/null
  touch "$POLICY_SET"
}

rm -f "$POLICY_SET"
set_policy &
exec rabbitmq-server "$@"
