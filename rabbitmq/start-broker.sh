#!/bin/bash
# Start RabbitMQ and, once it runs, declare the lab's exchanges and dead-letter
# queue (definitions.json) and set the lab's policy for task_queue:
# a task a worker rejects, or one delivered too many times, is dead-lettered
# to the `dead_letters` exchange instead of looping forever. A policy rather
# than queue arguments keeps task_queue declarable by the official tutorial's
# scripts (x-queue-type: quorum and nothing else). The policy also sets
# task_queue's consumer timeout above the longest task.
#
# In a cluster (LAB_CLUSTER_SIZE set, by compose.cluster.yaml) the node reports
# healthy only once every node is online: the workers, gated on that, declare
# task_queue with a member on each node.
#
# It refuses to start when the ports are published beyond this machine
# (LAB_BIND_ADDRESS not loopback) while the login is still the tutorial's guest.
set -euo pipefail

readonly POLICY_SET=/tmp/lab-policy-set  # the healthcheck waits for it
readonly TOPOLOGY=/etc/rabbitmq/lab-definitions.json
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

# The management UI's queue figures come from the management plugin's metrics, a
# deprecated feature on RabbitMQ 4.x (permitted by default for now, not in a future
# 4.x): MANAGEMENT_METRICS=false runs the broker as that version will. The lab's own
# tools read the Prometheus endpoint and AMQP instead, so they work either way.
permit_management_metrics() {
  case "${MANAGEMENT_METRICS:-true}" in
    true | false) ;;
    *) echo "start-broker.sh: MANAGEMENT_METRICS must be true or false, got '$MANAGEMENT_METRICS'" >&2; exit 1 ;;
  esac
  echo "deprecated_features.permit.management_metrics_collection = ${MANAGEMENT_METRICS:-true}" \
    >/etc/rabbitmq/conf.d/40-management-metrics.conf
}

refuse_guest_beyond_loopback() {
  local address="${LAB_BIND_ADDRESS:-127.0.0.1}"
  # Without RABBITMQ_DEFAULT_USER/PASS the broker creates guest/guest.
  local user="${RABBITMQ_DEFAULT_USER:-guest}" password="${RABBITMQ_DEFAULT_PASS:-guest}"
  case "$address" in
    127.* | ::1 | "[::1]" | localhost) return ;;
  esac
  if [[ "$user" == guest || "$password" == guest ]]; then
    echo "start-broker.sh: refusing to start: LAB_BIND_ADDRESS=$address publishes the broker beyond this machine while the login is still guest; set RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS in .env to your own (neither guest), or LAB_BIND_ADDRESS=127.0.0.1" >&2
    exit 1
  fi
}

set_policy() {
  # await_startup waits for a booting node, but fails at once if the node's VM is not up yet.
  until rabbitmqctl --quiet await_startup >/dev/null 2>&1; do sleep 2; done
  if [[ -n "${LAB_CLUSTER_SIZE:-}" ]]; then
    until rabbitmqctl --quiet await_online_nodes "$LAB_CLUSTER_SIZE" --timeout 60 >/dev/null 2>&1; do sleep 1; done
  fi
  # default_queue_type in 20-lab.conf reaches a new vhost; this one may predate it (an older volume).
  rabbitmqctl --quiet update_vhost_metadata / --default-queue-type quorum >/dev/null
  # Before the policy names dead_letters, so a task rejected before any worker ran is
  # dead-lettered (and RabbitMQ 4.3 logs no "Cannot forward any dead-letter messages").
  rabbitmqctl --quiet import_definitions "$TOPOLOGY" >/dev/null
  rabbitmqctl --quiet set_policy --apply-to quorum_queues task-queue '^task_queue$' "$TASK_QUEUE_POLICY" >/dev/null
  touch "$POLICY_SET"
}

refuse_guest_beyond_loopback
permit_management_metrics
rm -f "$POLICY_SET"
set_policy &
exec rabbitmq-server "$@"
