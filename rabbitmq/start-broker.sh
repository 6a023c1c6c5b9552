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
# (LAB_BIND_ADDRESS not loopback) while the login is still the tutorial's guest,
# and halts once started (status 1 too) if the broker's own users (its volume's) include one
# whose password is guest or its name.
set -euo pipefail

readonly POLICY_SET=/tmp/lab-policy-set  # the healthcheck waits for it
readonly TOPOLOGY=/etc/rabbitmq/lab-definitions.json
readonly DEFINITIONS=/tmp/lab-definitions.json  # TOPOLOGY and the policy
readonly START_SETTINGS=/etc/rabbitmq/conf.d/40-lab-start.conf
# The broker takes back a task not acknowledged within the consumer timeout
# (30 min by default): keep it a minute above the longest task the lab accepts.
CONSUMER_TIMEOUT_MS="$(awk -v dots="${MAX_DOTS_PER_TASK:?compose.yaml passes it from .env}" \
  -v per_dot="${SECONDS_PER_DOT:?compose.yaml passes it from .env}" \
  'BEGIN { printf "%d", (dots * per_dot + 60) * 1000 }')"
readonly CONSUMER_TIMEOUT_MS
readonly TASK_QUEUE_POLICY='{
  "dead-letter-exchange": "dead_letters",
  "dead-letter-strategy": "at-least-once",
  "overflow": "reject-publish",
  "delivery-limit": 20,
  "consumer-timeout": '"$CONSUMER_TIMEOUT_MS"'
}'

# Settings that depend on how the lab is started, written at each start.
# - The management UI's queue figures come from the management plugin's metrics, a
#   deprecated feature on RabbitMQ 4.x (permitted by default for now, not in a future
#   4.x): MANAGEMENT_METRICS=false runs the broker as that version will. The lab's
#   own tools read the Prometheus endpoint and AMQP instead: they work either way.
# - The tutorial's guest login works through the published ports only while they are
#   on loopback: the container sees a client on the host as the Docker gateway, so
#   guest needs loopback_users = none. Beyond loopback, guest may log in from inside
#   the container only, whatever users the broker's volume keeps.
write_start_settings() {
  case "${MANAGEMENT_METRICS:-true}" in
    true | false) ;;
    *) echo "start-broker.sh: MANAGEMENT_METRICS must be true or false, got '$MANAGEMENT_METRICS'" >&2; exit 1 ;;
  esac
  {
    echo "deprecated_features.permit.management_metrics_collection = ${MANAGEMENT_METRICS:-true}"
    # Without those metrics, each queue's message counts (total, ready, unacknowledged)
    # still reach the UI and /api/queues from the core figures Prometheus reads too.
    [[ "${MANAGEMENT_METRICS:-true}" == true ]] || echo "management.enable_queue_totals = true"
    if beyond_loopback; then echo "loopback_users.guest = true"; else echo "loopback_users = none"; fi
  } >"$START_SETTINGS"
}

beyond_loopback() {
  case "${LAB_BIND_ADDRESS:-127.0.0.1}" in
    127.* | ::1 | "[::1]" | localhost) return 1 ;;
  esac
}

refuse_guest_beyond_loopback() {
  # Without RABBITMQ_DEFAULT_USER/PASS the broker creates guest/guest.
  local user="${RABBITMQ_DEFAULT_USER:-guest}" password="${RABBITMQ_DEFAULT_PASS:-guest}"
  beyond_loopback || return 0
  if [[ "$user" == guest || "$password" == guest ]]; then
    echo "start-broker.sh: refusing to start: LAB_BIND_ADDRESS=$LAB_BIND_ADDRESS publishes the broker beyond this machine while the login is still guest; set RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS in .env to your own (neither guest), or LAB_BIND_ADDRESS=127.0.0.1" >&2
    exit 1
  fi
}

# Beyond loopback, once the broker runs: the users it actually has (its volume keeps
# those of its first start, whatever .env says now) may not have the password guest
# or their own name. If one does, the broker stops, saying which and how to fix it.
refuse_weak_users_beyond_loopback() {
  beyond_loopback || return 0
  local user weak=()
  while IFS=$'\t' read -r user _; do
    if rabbitmqctl --quiet authenticate_user "$user" guest >/dev/null 2>&1 \
      || rabbitmqctl --quiet authenticate_user "$user" "$user" >/dev/null 2>&1; then
      weak+=("$user")
    fi
  done < <(rabbitmqctl --quiet list_users --no-table-headers)
  ((${#weak[@]} == 0)) && return 0
  echo "start-broker.sh: refusing to run: LAB_BIND_ADDRESS=$LAB_BIND_ADDRESS publishes the broker beyond this machine while its user(s) ${weak[*]} have the password guest or their own name (kept in the broker's volume from an earlier start); fix: docker compose down -v (drops queued tasks), or delete those users, or LAB_BIND_ADDRESS=127.0.0.1" >&2
  # Halted with status 1, as the refusal before the start exits: `rabbitmqctl stop` exits 0,
  # and a broker stopped with status 0 reads as `docker compose stop` to doctor.sh and to Docker.
  rabbitmqctl --quiet eval 'init:stop(1).' >/dev/null 2>&1
  return 1
}

# definitions.json with task_queue's policy added (its consumer timeout depends on .env):
# one import sets all, as each rabbitmqctl call starts an Erlang VM, a second or more of CPU
# (the broker's own boot takes about five).
lab_definitions() {
  local topology policy
  topology="$(<"$TOPOLOGY")"
  policy='{"vhost": "/", "name": "task-queue", "pattern": "^task_queue$", "apply-to": "quorum_queues",
    "priority": 0, "definition": '"$TASK_QUEUE_POLICY"'}'
  printf '%s,\n  "policies": [%s]\n}\n' "${topology%\}*}" "$policy"  # TOPOLOGY's object, one key more
}

set_policy() {
  # The node takes connections once it has booted (waited for in bash, not with rabbitmqctl).
  until (: </dev/tcp/127.0.0.1/5672) 2>/dev/null; do sleep 1; done
  refuse_weak_users_beyond_loopback || return
  if [[ -n "${LAB_CLUSTER_SIZE:-}" ]]; then
    until rabbitmqctl --quiet await_online_nodes "$LAB_CLUSTER_SIZE" --timeout 60 >/dev/null 2>&1; do sleep 1; done
  fi
  # The vhost's default queue type (20-lab.conf's reaches a new vhost; this one may predate it,
  # an older volume), the exchanges and dead_letter_queue, and the policy. RabbitMQ imports
  # policies before exchanges; a task_queue that exists already (the volume's) has its
  # dead_letters too, so 4.3 logs no "Cannot forward any dead-letter messages".
  lab_definitions >"$DEFINITIONS"
  rabbitmqctl --quiet import_definitions "$DEFINITIONS" >/dev/null
  touch "$POLICY_SET"
}

refuse_guest_beyond_loopback
write_start_settings
rm -f "$POLICY_SET"
set_policy &
exec rabbitmq-server "$@"
