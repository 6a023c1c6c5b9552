#!/usr/bin/env bash
# Tell what keeps the lab from working. One line per check, with its verdict
# (OK; WARN: works, but look; FAIL; SKIP: not checked after an earlier FAIL)
# and, where it is not OK, the fix. Checks the Docker engine, Compose v2,
# .env, line endings, the host ports, the broker, on a cluster task_queue's
# members on each node, the workers and task_queue.
#
# Usage: scripts/doctor.sh [-h | --help]
# Exit status: 0 if every check is OK, 1 otherwise.
# Takes: a few seconds.
# Changes: nothing; it prints the fixes, it does not apply them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
(($# == 0)) || refuse "$1"

all_ok=1
verdict() {  # verdict OK|WARN|FAIL|SKIP CHECK WHAT [FIX]
  printf '%-4s  %-15s  %s%s\n' "$1" "$2" "$3" "${4:+ -> fix: $4}"
  [[ "$1" == OK ]] || all_ok=0
}

first_line() { awk 'NF { sub(/^[[:space:]]+/, ""); print substr($0, 1, 160); exit }' <<<"$1"; }  # of those not blank

docker_ok=1
check_docker() {
  local version
  if ! command -v docker >/dev/null; then
    verdict FAIL docker "the docker command is not installed" \
      "install Docker Desktop (Windows, macOS) or Docker Engine (Linux)"
    docker_ok=0
  elif version="$(docker version --format '{{.Server.Version}}' 2>&1)"; then
    verdict OK docker "engine $version answers"
  else
    verdict FAIL docker "the Docker engine does not answer: $(first_line "$version")" \
      "start Docker Desktop (Linux: sudo systemctl start docker), then check with: docker info"
    docker_ok=0
  fi
}

compose_ok=1
check_compose() {
  local version major
  version="$(docker compose version --short 2>/dev/null || true)"
  major="${version#v}"
  major="${major%%.*}"
  if [[ "$major" =~ ^[0-9]+$ && "$major" -ge 2 ]]; then
    verdict OK compose "Docker Compose $version"
    return
  fi
  compose_ok=0
  if command -v docker-compose >/dev/null; then
    verdict FAIL compose "only the old docker-compose (v1) is installed; the lab needs docker compose v2" \
      "update Docker Desktop, or install the docker-compose-plugin package (Linux)"
  else
    verdict FAIL compose "docker compose (v2) is missing" \
      "update Docker Desktop, or install the docker-compose-plugin package (Linux)"
  fi
}

check_env() {
  local errors
  if [[ ! -r .env ]]; then
    verdict FAIL .env "missing or unreadable" "restore it: git checkout -- .env"
  elif ((!compose_ok)); then
    verdict SKIP .env "readable; docker compose config not checked (no Compose v2)"
  elif ! errors="$(docker compose config -q 2>&1)"; then
    verdict FAIL .env "docker compose config fails: $(first_line "$errors")" \
      "correct that setting in .env (git diff .env shows what changed)"
  else
    verdict OK .env "readable; docker compose config passes"
  fi
}

check_line_endings() {
  local with_cr count
  # Every folder the containers copy (their Dockerfiles' COPY lines) and what runs on this machine.
  with_cr="$(grep -rlI --exclude-dir=node_modules --exclude-dir=__pycache__ $'\r' .env compose.yaml compose.cluster.yaml \
    scripts rabbitmq consumer producer dashboard lab labctl checker 2>/dev/null || true)"
  if [[ -z "$with_cr" ]]; then
    verdict OK "line endings" "LF in the scripts and in what the containers run"
    return
  fi
  count="$(grep -c . <<<"$with_cr")"
  # .env holds the student's own settings: fixed in place, never checked out again.
  local fix="sed -i 's/\\r\$//' .env (keeps your settings)"
  if [[ "$with_cr" != .env ]]; then
    fix="git config --global core.autocrlf input, then clone the lab again and bring your settings along: sed 's/\\r\$//' OLD-CLONE/.env > .env"
  fi
  verdict FAIL "line endings" "$count files have Windows line endings (CR), e.g. $(first_line "$with_cr")" "$fix"
}

# What holds PORT (PROTOCOL amqp or http), in $holder, and how to stop it, in
# $stop: a RabbitMQ if it answers like one, the container or program when
# Docker, lsof or ss can name it.
describe_port_holder() {
  local port="$1" reply="" container="" program=""
  if command -v curl >/dev/null; then
    if [[ "$2" == amqp ]]; then
      # An AMQP 0-9-1 protocol header; a broker answers with connection.start.
      reply="$(printf 'AMQP\0\0\11\1' | curl -s --max-time 2 "telnet://127.0.0.1:$port" 2>/dev/null | tr -d '\000' || true)"
    else
      reply="$(curl -s --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null || true)"
    fi
  fi
  if ((docker_ok)); then
    container="$(docker ps --filter "publish=$port" --format '{{.Names}}' 2>/dev/null | head -n 1)"
  fi
  if [[ -z "$container" ]] && command -v lsof >/dev/null; then
    program="$(lsof -nP -iTCP:"$port" -sTCP:LISTEN -Fpc 2>/dev/null \
      | awk '/^p/ { pid = substr($0, 2) } /^c/ { print substr($0, 2) " (pid " pid ")"; exit }')"
  fi
  if [[ -z "$container$program" ]] && command -v ss >/dev/null; then
    program="$(ss -ltnpH "sport = :$port" 2>/dev/null \
      | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)"
  fi

  if [[ "$reply" == *RabbitMQ* ]]; then
    holder="a RabbitMQ already listens there"
    [[ -n "$container" ]] || holder="$holder (installed natively?)"
    stop="stop that broker (Windows: net stop RabbitMQ; macOS: brew services stop rabbitmq; Linux: sudo systemctl stop rabbitmq-server)"
  else
    holder="it is in use by another program"
    stop="stop that program"
  fi
  if [[ -n "$container" ]]; then
    holder="$holder: container $container"
    stop="stop that container (docker stop $container)"
  elif [[ -n "$program" ]]; then
    holder="$holder: $program"
  fi
}

next_free_port() {
  local port=$(($1 + 1))
  while port_in_use "$port"; do port=$((port + 1)); done
  echo "$port"
}

workers_to_keep() {  # as many workers as run now, or the usual 3
  local running
  running=$(($(running_workers)))
  echo $((running > 0 ? running : 3))
}

check_port() {  # check_port SETTING SERVICE CONTAINER_PORT PROTOCOL
  local name="$1" service="$2" port published holder="" stop="" what="$2"
  [[ "$service" != rabbitmq ]] || what=broker
  port="$(setting "$name" 2>/dev/null)"
  if ! [[ "$port" =~ ^[0-9]+$ ]]; then
    verdict FAIL "$name" "'$port' is not a port number" "set $name to a port number in .env (port changes belong in .env)"
    return
  fi
  published=""
  if ((compose_ok && docker_ok)); then
    published="$(docker compose port "$service" "$3" 2>/dev/null || true)"
  fi
  if [[ -n "$published" && "${published##*:}" == "$port" ]]; then
    verdict OK "$name" "$port: this lab's $what"
  elif [[ -n "$published" ]]; then
    local taken=""
    if port_in_use "$port"; then
      describe_port_holder "$port" "$4"
      taken="; $port: $holder"
    fi
    verdict FAIL "$name" "$port, but the running $what publishes ${published##*:}$taken" \
      "set $name in .env, not in the shell (the next command would undo it), then: docker compose up -d --scale consumer=$(workers_to_keep)"
  elif ! port_in_use "$port"; then
    verdict OK "$name" "$port: free"
  else
    describe_port_holder "$port" "$4"
    verdict FAIL "$name" "$port: $holder" \
      "$stop, or set $name=$(next_free_port "$port") in .env (port changes belong in .env)"
  fi
}

# The gist of an unwell broker: its last log line that looks like an error,
# else its last line, without colours.
broker_gist() {
  local tail gist
  tail="$(docker compose logs --no-color --no-log-prefix --tail 30 rabbitmq 2>&1 \
    | tr -d '\033' | sed 's/\[[0-9;]*m//g' | grep -v '^[[:space:]]*$' || true)"
  gist="$(grep -i -E 'error|fail|crash|refused|denied|cannot|eaddrinuse' <<<"$tail" | tail -n 1 || true)"
  gist="$(first_line "${gist:-$(tail -n 1 <<<"$tail")}")"
  echo "${gist:+its last log line: $gist}"
}

# start-broker.sh's refusal to publish the broker beyond loopback with a guest login, if
# that is why the broker exited: "CAUSE; FIX" as the broker itself words it.
broker_refusal() {
  docker compose logs --no-color --no-log-prefix --tail 200 rabbitmq 2>/dev/null \
    | sed -n 's/^start-broker\.sh: refusing to [a-z]*: //p' | tail -n 1
}

broker_ok=0
check_broker() {  # the single broker, or each node of the cluster
  local nodes=()
  read -r -a nodes <<<"$(docker compose config --services 2>/dev/null | grep -x -E 'rabbitmq(-[0-9]+)?' | sort | xargs)"
  if ((${#nodes[@]} > 1)); then
    check_cluster_nodes "${nodes[@]}"
  else
    check_single_broker
  fi
}

node_state() {  # node_state SERVICE: state|health|exit code of its container
  docker compose ps --all --format '{{.State}}|{{.Health}}|{{.ExitCode}}' "$1" 2>/dev/null | head -n 1
}

check_single_broker() {
  local state health exit_code refusal ways_out
  IFS='|' read -r state health exit_code <<<"$(node_state rabbitmq)"
  case "$state|$health" in
    "|") verdict FAIL broker "no broker container: the lab is not running" "docker compose up -d --scale consumer=3" ;;
    running\|healthy) verdict OK broker "running, healthy"; broker_ok=1 ;;
    running\|starting) verdict WARN broker "running, still starting" "wait a minute (docker compose up -d --wait waits for it)" ;;
    running\|*) verdict FAIL broker "running but $health; $(broker_gist)" \
      "see docker compose logs rabbitmq, then: docker compose restart rabbitmq" ;;
    exited\|*)
      refusal="$(broker_refusal)"
      if [[ -n "$refusal" ]]; then
        ways_out="${refusal#*; }"
        verdict FAIL broker "refused to start: ${refusal%%; *}" \
          "${ways_out#fix: }; then: docker compose up -d --scale consumer=3"
      elif [[ "$exit_code" == 0 ]]; then
        verdict FAIL broker "stopped (docker compose stop)" "docker compose up -d --scale consumer=3"
      else
        verdict FAIL broker "exited (code $exit_code); $(broker_gist)" \
          "see docker compose logs rabbitmq, then: docker compose up -d --scale consumer=3"
      fi ;;
    created\|*) verdict FAIL broker "created but never started (a host port taken? see above)" \
      "docker compose up -d --scale consumer=3" ;;
    *) verdict FAIL broker "$state" "docker compose up -d --scale consumer=3" ;;
  esac
}

check_cluster_nodes() {  # check_cluster_nodes NODE...: healthy ones, and those that are not
  local node state health exit_code healthy=() down=()
  for node in "$@"; do
    IFS='|' read -r state health exit_code <<<"$(node_state "$node")"
    if [[ "$state|$health" == "running|healthy" ]]; then
      healthy+=("$node")
    else
      [[ "$state" == exited ]] || exit_code=""
      down+=("$node (${state:-no container}${exit_code:+ with code $exit_code}${health:+, $health})")
    fi
  done
  if ((${#down[@]} == 0)); then
    verdict OK broker "cluster: ${healthy[*]} running, healthy"; broker_ok=1
  elif ((${#healthy[@]})); then
    verdict WARN broker "cluster: ${healthy[*]} healthy; not running: ${down[*]}" \
      "docker compose up -d --wait --scale consumer=3"
    broker_ok=1
  else
    verdict FAIL broker "cluster: no node is running (${down[*]})" "docker compose up -d --wait --scale consumer=3"
  fi
}

# rabbitmqctl or rabbitmq-queues on a running node (any), quietly: the single broker or a cluster's.
cluster_ctl() {  # cluster_ctl TOOL ARGS...
  local node
  for node in rabbitmq rabbitmq-2 rabbitmq-3; do
    if [[ -n "$(docker compose ps --status running --quiet "$node" 2>/dev/null)" ]]; then
      docker compose exec -T "$node" "$@" --silent
      return
    fi
  done
  echo "no node of the cluster is running" >&2
  return 1
}

# task_queue_quorum: one line per member of task_queue, tab-separated: node (without
# rabbit@), Raft state, up or down, commit index. A member is up only while its node answers
# with a Raft state; a node that is gone shows `noconnection` (RabbitMQ 4.3, or a killed node
# on 4.0) or `{nodedown,...}` (a stopped node on 4.0).
task_queue_quorum() {
  local status
  status="$(cluster_ctl rabbitmq-queues quorum_status task_queue --formatter table)" || return
  awk -F '\t' -v OFS='\t' 'NF {
    sub(/^rabbit@/, "", $1)
    up = $2 ~ /^(leader|follower|candidate|pre_vote|await_condition|receive_snapshot)$/ ? "up" : "down"
    print $1, $2, up, $7
  }' <<<"$status"
}

broker_ctl() { cluster_ctl rabbitmqctl "$@" --no-table-headers 2>&1; }

prefetch_in_words() {  # prefetch_in_words COUNTS: the consumers' prefetch counts (one a line) in words
  sort -n -u <<<"$1" | awk '{ printf "%s%s", (NR > 1 ? " and " : "prefetch "), ($1 == 0 ? "unlimited (round-robin)" : $1) }'
}

check_workers_and_queue() {
  local queues row type policy prefetches consumers running
  if ! queues="$(broker_ctl list_queues name type policy)"; then
    verdict FAIL workers "rabbitmqctl list_queues failed: $(first_line "$queues")" "docker compose restart rabbitmq"
    verdict SKIP task_queue "not checked"
    return
  fi
  row="$(awk -F '\t' '$1 == "task_queue"' <<<"$queues")"
  running=$(($(running_workers)))
  if [[ -z "$row" ]]; then
    verdict FAIL workers "$running running; task_queue does not exist yet (a worker declares it)" \
      "docker compose up -d --scale consumer=3"
    verdict SKIP task_queue "does not exist"
    return
  fi
  IFS=$'\t' read -r _ type policy <<<"$row"
  # list_consumers, not list_queues' consumers column: that one lags seconds behind.
  prefetches="$(broker_ctl list_consumers queue_name prefetch_count | awk -F '\t' '$1 == "task_queue" { print $2 }')"
  consumers="$(grep -c . <<<"$prefetches" || true)"
  if ((running == 0)); then
    verdict WARN workers "no worker running: tasks wait in task_queue" "docker compose up -d --scale consumer=3"
  elif ((consumers == running)); then
    verdict OK workers "$running running, $consumers attached to task_queue, $(prefetch_in_words "$prefetches")"
  elif ((consumers < running)); then
    verdict FAIL workers "$running running, only $consumers attached to task_queue" \
      "give them a few seconds; if it stays so, see why: docker compose logs consumer"
  else
    verdict WARN workers "$running running, but $consumers consumers on task_queue: other programs take its tasks too" \
      "nothing, if they are your own scripts (send.sh --wait counts their tasks as done by others); else stop them"
  fi
  if [[ "$type" != quorum ]]; then
    verdict FAIL task_queue "is a $type queue, not quorum (declared by an older script?)" \
      "docker compose exec rabbitmq rabbitmqctl delete_queue task_queue, then docker compose restart consumer (its queued tasks are lost)"
  elif [[ "$policy" != task-queue ]]; then
    verdict FAIL task_queue "quorum, but policy '${policy:-none}', not task-queue (no dead-lettering)" \
      "docker compose restart rabbitmq (start-broker.sh sets the policy)"
  else
    verdict OK task_queue "quorum, policy task-queue"
  fi
}

# The cluster (compose.cluster.yaml): task_queue's members, and whether a majority of them is up.
cluster_ok=1
check_cluster() {
  local quorum up down members leader commits
  if ! quorum="$(task_queue_quorum 2>&1)"; then
    verdict FAIL cluster "rabbitmq-queues quorum_status task_queue failed: $(first_line "$quorum")" \
      "docker compose up -d --wait --scale consumer=3"
    return
  fi
  up="$(awk -F '\t' '$3 == "up" { print $1 }' <<<"$quorum" | xargs)"
  down="$(awk -F '\t' '$3 == "down" { print $1 }' <<<"$quorum" | xargs)"
  members="$(grep -c . <<<"$quorum")"
  leader="$(awk -F '\t' '$2 == "leader" { print $1 }' <<<"$quorum")"
  commits="$(awk -F '\t' '$3 == "up" { print $4 }' <<<"$quorum" | sort -u | xargs)"
  if ((2 * $(wc -w <<<"$up") <= members)); then
    cluster_ok=0
    verdict FAIL cluster "task_queue has no majority: $(wc -w <<<"$up") of $members members up (${up:-none}; down: $down); it takes and delivers no task until a node is back, and send.sh waits" \
      "docker compose start $down"
  elif [[ -n "$down" ]]; then
    verdict WARN cluster "task_queue has $(wc -w <<<"$up") of $members members up, a majority: it works on (leader ${leader:-being elected}; down: $down)" \
      "docker compose start $down"
  elif ((members < 3)); then
    verdict WARN cluster "task_queue has $members members ($up), not one on each of the 3 nodes" \
      "wait a minute (membership reconciliation adds them), or: docker compose exec rabbitmq rabbitmq-queues grow rabbit@NODE all"
  elif [[ -z "$leader" ]]; then
    verdict WARN cluster "task_queue members: $up, electing a leader" "run doctor.sh again in a few seconds"
  else
    verdict OK cluster "task_queue members: $up (leader $leader)$([[ "$commits" == *" "* ]] && echo ", catching up" || echo ", in sync")"
  fi
}

check_docker
check_compose
check_env
check_line_endings
check_port AMQP_PORT rabbitmq 5672 amqp
check_port MANAGEMENT_PORT rabbitmq 15672 http
check_port DASHBOARD_PORT dashboard 8080 http
if ((docker_ok && compose_ok)); then
  check_broker
else
  verdict SKIP broker "not checked (no Docker engine or Compose v2)"
fi
if ((broker_ok)) && [[ " $(docker compose config --services 2>/dev/null | xargs) " == *" rabbitmq-2 "* ]]; then
  check_cluster
fi
if ((broker_ok && cluster_ok)); then
  check_workers_and_queue
elif ((broker_ok)); then
  verdict SKIP workers "not checked (task_queue has no majority)"
  verdict SKIP task_queue "not checked (task_queue has no majority)"
else
  verdict SKIP workers "not checked (the broker is not healthy)"
  verdict SKIP task_queue "not checked (the broker is not healthy)"
fi
((all_ok))
