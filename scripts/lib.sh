#!/usr/bin/env bash
# Shared by the lab's scripts, which source it: the repo root as the working
# directory, how arguments are checked, error helpers, how to run the producer
# image, and how a demo ends cleanly.
#
# Usage: source "$(dirname "$0")/lib.sh"     (from a script in scripts/)
# Takes: no time.
# Changes: nothing on its own.

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  if [[ "$*" == -h || "$*" == --help ]]; then
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
    exit 0
  fi
  echo "lib.sh: source it from a script (source \"\$(dirname \"\$0\")/lib.sh\"); it does nothing on its own" >&2
  exit 2
fi

# Paths the caller gives are relative to where they stand, not to the repo root.
readonly CALLER_DIR="$PWD"
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

from_caller() {  # from_caller PATH: PATH as the caller meant it, from the repo root
  case "$1" in
    /* | [A-Za-z]:*) echo "$1" ;;  # absolute, also C:/... on Windows
    *) echo "$CALLER_DIR/${1#./}" ;;
  esac
}

for_caller() {  # for_caller DIR: DIR (from the repo root) as the caller can use it
  if [[ "$CALLER_DIR" == "$PWD" ]]; then echo "$1"; else (cd "$1" && pwd); fi
}

fail() {  # fail MESSAGE [STATUS]: one line on stderr, exit STATUS (default 2: bad input)
  echo "$(basename "$0"): $1" >&2
  exit "${2:-2}"
}

# --- Arguments: checked before a script does anything ---------------------------

usage() {  # usage: the script's header comment, from its second line to the first that is no comment
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "scripts/$(basename "$0")"
}

exit_if_help_asked() {  # exit_if_help_asked ARGS...: with -h or --help among ARGS, the usage and exit 0
  if help_asked "$@"; then
    usage
    exit 0
  fi
}

help_asked() {  # help_asked ARGS...: -h or --help is among ARGS (before a --)
  local arg
  for arg; do
    case "$arg" in
      --) return 1 ;;
      -h | --help) return 0 ;;
    esac
  done
  return 1
}

refuse() {  # refuse ARG: one line saying the script does not take ARG, exit 2
  case "$1" in
    -[0-9]*) fail "unexpected argument '$1' (see --help)" ;;
    -?*) fail "unknown option $1 (see --help)" ;;
    *) fail "unexpected argument '$1' (see --help)" ;;
  esac
}

# check_arguments MAX OPTIONS ARGS...: -h/--help prints the usage and exits 0;
# an option not among OPTIONS (a space-separated list of options without a
# value), or more than MAX arguments, is refused (exit 2). What the arguments
# mean is the script's to check, before it acts.
check_arguments() {
  local max="$1" options=" $2 " arg count=0 most="at most $1 arguments"
  shift 2
  ((max != 1)) || most="one argument at most"
  ((max != 0)) || most="no arguments"
  exit_if_help_asked "$@"
  for arg; do
    count=$((count + 1))
    ((count <= max)) || fail "unexpected argument '$arg': it takes $most (see --help)"
    [[ "$arg" != -?* || "$arg" == -[0-9]* || "$options" == *" $arg "* ]] || refuse "$arg"
  done
}

readonly START_LAB="start it with: docker compose up -d --scale consumer=3"
# shellcheck disable=SC2034  # admin.sh prints it
readonly NOT_RUNNING="the lab is not running; $START_LAB"

lab_is_running() {  # a broker runs: the single one, or any node of the cluster
  # grep reads all (no -q): under pipefail an early exit would fail the pipe (SIGPIPE).
  docker compose ps --status running --services 2>/dev/null | grep -x -E 'rabbitmq(-[0-9]+)?' >/dev/null
}

lab_ports() {  # lab_ports: the host ports the lab's own containers publish, one per line
  docker compose ps --format '{{range .Publishers}}{{.PublishedPort}}{{"\n"}}{{end}}' 2>/dev/null | sort -u
}

port_in_use() {  # port_in_use PORT: something on this machine accepts connections on PORT
  (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Why the lab's broker is not running, when it shows: Docker's error, the
# broker container's state, or a host port taken by another program.
why_not_running() {
  local status name port reasons=""
  if ! status="$(docker compose ps --all --format '{{.Status}}' rabbitmq 2>&1)"; then
    echo "docker compose: $(head -n 1 <<<"$status")"
    return
  fi
  [[ -z "$status" ]] || reasons="its broker container is '$status'"
  local ours
  ours="$(lab_ports)"
  for name in AMQP_PORT MANAGEMENT_PORT DASHBOARD_PORT; do
    port="$(setting "$name")"
    if port_in_use "$port" && ! grep -q -x "$port" <<<"$ours"; then
      reasons="${reasons:+$reasons; }$name $port is in use by another program"
    fi
  done
  echo "$reasons"
}

require_running_lab() {
  lab_is_running && return
  local why
  why="$(why_not_running)"
  fail "the lab is not running${why:+ ($why)}; $START_LAB; scripts/doctor.sh tells what is wrong" 1
}

# compose_quietly ARGS...: docker compose ARGS..., without its per-container
# progress lines (those that report an error stay); its exit status.
compose_quietly() {
  local status=0
  docker compose "$@" 2>&1 | awk '
    /Bake/ || (/^ *Container/ && !/[Ee]rror|unhealthy|[Ee]xited/) { next }
    { print; fflush() }' || status=$?
  return "$status"
}

# compose_or_stop ARGS...: compose_quietly ARGS..., or stop the script (exit 1)
# with what failed and where to look for why.
compose_or_stop() {
  compose_quietly "$@" \
    || fail "docker compose $1 failed (its error is above); scripts/doctor.sh tells what is wrong and the fix" 1
}

# lab_up ARGS...: docker compose up --detach --wait ARGS..., giving up after
# $WAIT_SECONDS, or stop the script.
lab_up() {
  compose_or_stop up --detach --wait --wait-timeout "$WAIT_SECONDS" "$@"
}

# One line with the live dashboard's address, once per script run (a demo's
# send.sh --wait does not repeat it), if the lab's dashboard is running.
show_dashboard() {
  [[ -z "${LAB_DASHBOARD_SHOWN:-}" ]] || return 0
  export LAB_DASHBOARD_SHOWN=1
  [[ -n "$(docker compose ps --status running --quiet dashboard 2>/dev/null)" ]] || return 0
  local host
  host="$(setting LAB_BIND_ADDRESS)"
  [[ "$host" != 127.0.0.1 && "$host" != 0.0.0.0 && -n "$host" ]] || host=localhost
  echo "Dashboard: http://$host:$(setting DASHBOARD_PORT) (who is doing what, live)"
}

running_workers() {
  docker compose ps --status running --quiet consumer | wc -l
}

# Run a program of the producer image (new_task.py, report.py) against the lab:
# as the caller's user, so the runs it saves in timelines/ (or $TIMELINES_DIR)
# are theirs to delete, or as the image's own user when the caller is root.
# A signal that ends the caller (Ctrl+C, `timeout`, a closed terminal) is passed
# on to the program, which says what it had done: `docker compose run` alone
# would leave its container running.
producer() {
  local timelines="${TIMELINES_DIR:-timelines}" user=() status=0
  mkdir -p "$timelines"
  if [[ "$(id -u)" == 0 ]]; then
    chmod g+rwx "$timelines"  # the image's user is in group 0: it may write there, root may delete it
  else
    user=(--user "$(id -u):$(id -g)")
  fi
  producer_container="$(producer_container_of $$)"
  # No TTY (-T): the program is told whether its output is a terminal instead,
  # and how wide it is (for its progress bars and tables).
  # Its own process group (set -m), so that a signal meant for this script's
  # group (`timeout`, Ctrl+C) reaches it only through end_producer, which lets
  # it say what it did: `docker compose run` itself would end at once, leaving
  # its container running. A terminal is no stdin for a background group.
  # Compose adds an empty line to stderr when the program fails: dropped.
  local input=/dev/stdin
  [[ ! -t 0 ]] || input=/dev/null
  # Tested here: inside $(...) standard output is a pipe, never the terminal.
  local on_terminal="" columns=""
  if [[ -t 1 ]]; then
    on_terminal=1
    columns="$(stty size </dev/tty 2>/dev/null | cut -d ' ' -f 2)" || true
    [[ "$columns" != 0 ]] || columns=""  # a terminal that does not know its size
  fi
  local callers_traps
  callers_traps="$(trap -p INT TERM HUP)"
  set -m
  # ${user[@]+...}: an empty array under `set -u` in macOS's bash 3.2
  docker compose run --rm --no-deps -T --name "$producer_container" ${user[@]+"${user[@]}"} \
    --env "LAB_TERMINAL=$on_terminal" --env "COLUMNS=$columns" \
    --env "TIMELINES_SHOWN_AS=$(for_caller "$timelines")" \
    --volume "$(cd "$timelines" && pwd):/app/timelines" producer "$@" <"$input" 2> >(drop_empty_lines >&2) &
  producer_run=$!
  set +m
  trap 'end_producer INT 130' INT
  trap 'end_producer TERM 143' TERM
  trap 'end_producer HUP 129' HUP
  wait "$producer_run" || status=$?
  trap - INT TERM HUP
  eval "$callers_traps"  # a demo's, when it runs the producer
  return "$status"
}

producer_container_of() {  # producer_container_of PID: the container `producer` names in script PID
  echo "${COMPOSE_PROJECT_NAME:-rabbitmq-lab}-producer-$1"
}

drop_empty_lines() {  # line by line, as they come (sed would buffer them in a pipe)
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ -z "$line" ]] || printf '%s\n' "$line"
  done
}

end_producer() {  # end_producer SIGNAL STATUS: pass SIGNAL on to the producer, let it report, exit STATUS
  trap - INT TERM HUP
  until docker kill --signal "$1" "$producer_container" >/dev/null 2>&1; do
    kill -0 "$producer_run" 2>/dev/null || break  # it ended by itself
    sleep 0.2  # its container is still being created
  done
  wait "$producer_run" 2>/dev/null || true
  docker rm --force "$producer_container" >/dev/null 2>&1 || true  # --rm is undone if compose died first
  exit "$2"
}

# ensure_venv [REQUIREMENTS]: .venv with what REQUIREMENTS (default tests/requirements.txt,
# all the tests and the benchmark need) names, on this machine. pip runs only when that file,
# or one it includes with -r, differs from what was last installed from it (a pip run that
# finds all installed still takes seconds).
ensure_venv() {
  local requirements="${1:-tests/requirements.txt}" file
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  cmp -s <(requirements_text "$requirements") "$(installed_from "$requirements")" 2>/dev/null && return
  echo "Setting up .venv (pip install -r $requirements): the first time takes up to a minute" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  mkdir -p .venv/installed
  { echo "$requirements"; included_by "$requirements"; } | while read -r file; do
    requirements_text "$file" >"$(installed_from "$file")"  # what it includes is installed too
  done
}

installed_from() { echo ".venv/installed/${1//\//_}"; }  # installed_from FILE: its record in .venv

requirements_text() {  # requirements_text FILE: its text, then that of each file it includes
  cat "$1"
  included_by "$1" | while read -r file; do cat "$file"; done
}

included_by() {  # included_by FILE: the files it includes (-r), from the repo's root
  local include folder
  sed -n 's/^-r[[:space:]]*//p' "$1" | while read -r include; do
    folder="$(cd "$(dirname "$1")/$(dirname "$include")" && pwd)"
    echo "${folder#"$PWD"/}/$(basename "$include")"
  done
}

# setting NAME: its value from the shell if set there, else from .env, as Compose
# resolves it for the lab's plain NAME=value lines. A sed, not `docker compose
# config` (which the Python helpers use, tests/support/labstack.py): doctor.sh must read
# the ports when Compose itself fails, and the scripts need no JSON parser.
setting() {
  local value="${!1:-}"
  [[ -n "$value" ]] || value="$(sed -n "s/^$1=//p" .env | tail -n 1)"
  echo "$value"
}

positive_whole_number() {  # positive_whole_number WHAT VALUE: VALUE, or fail
  [[ "$2" =~ ^[0-9]+$ && "$((10#$2))" -ge 1 ]] || fail "$1 must be a positive whole number, got '$2'"
  echo "$((10#$2))"
}

# Start the lab with WORKERS workers taking at most PREFETCH unacknowledged
# tasks each (0: no limit); workers with another prefetch are re-created.
start_workers() {
  echo "==> $1 workers with $([[ "$2" == 0 ]] && echo "no prefetch limit" || echo "prefetch $2")"
  PREFETCH="$2" lab_up --scale "consumer=$1"
  show_dashboard
}

seconds_of_work() {  # seconds_of_work DOTS: how long DOTS dots take with this lab's SECONDS_PER_DOT
  awk -v dots="$1" -v per_dot="$(setting SECONDS_PER_DOT)" 'BEGIN { print dots * per_dot }'
}

# --- Demos: they end cleanly or not at all ---------------------------------------

# How long a demo waits for anything (the lab to start, a task to arrive, a
# node to rejoin) before it gives up; a test may shorten it.
readonly WAIT_SECONDS="${LAB_WAIT_SECONDS:-180}"

# wait_until WHAT COMMAND...: COMMAND, every $poll_seconds (1 s), until it succeeds; after
# $WAIT_SECONDS stop the script (exit 1) saying WHAT did not happen. COMMAND runs
# in a background subshell the script waits for: bash 5.2 can botch a Ctrl+C trap
# that comes while the shell itself runs command substitutions ("interrupt trap:
# ... unexpected EOF", exit status 2), and the wait builtin takes it at once. In a
# process group of its own (set -m), which end_demo ends whole: a background
# subshell and what it runs would ignore Ctrl+C. No stdin: a background group that
# reads the terminal is stopped (docker compose exec -T reads it).
polling=""
wait_until() {
  local what="$1" status=0
  shift
  set -m
  poll_until "$@" </dev/null &
  polling=$!
  set +m
  wait "$polling" || status=$?
  polling=""
  ((status == 0)) || fail "gave up after $WAIT_SECONDS s waiting for $what; scripts/doctor.sh tells what is wrong" 1
}

poll_seconds=1  # how often poll_until tries; a wait for a moment that matters sets it lower
poll_until() {  # poll_until COMMAND...: COMMAND every $poll_seconds until it succeeds (0) or $WAIT_SECONDS pass (1)
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep "$poll_seconds"
  done
}

# A demo calls begin_demo before it acts. Then Ctrl+C, SIGTERM, a closed
# terminal or a failure end what it started in the background (the sender and
# its producer container, killed before the producer could save a run: no
# timeline of a run that did not happen) and undo what it changed (see undo_on_exit).
sending=""
undo=()
begin_demo() {
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  trap end_demo EXIT
}

end_demo() {  # the EXIT trap of a demo: its exit status stays
  local status=$?
  trap '' INT HUP  # a second Ctrl+C must not cut the clean-up short
  trap - EXIT
  [[ -z "$polling" ]] || kill -- "-$polling" 2>/dev/null || true
  stop_sender
  if ((${#undo[@]} > 1)); then
    echo "==> Stopped early: ${undo[0]}" >&2
    compose_quietly "${undo[@]:1}" >&2 || echo "==> That failed; run: docker compose ${undo[*]:1}" >&2
  fi
  exit "$status"
}

# undo_on_exit WHAT COMPOSE_ARGS...: if the demo ends early, end_demo says WHAT
# and runs docker compose COMPOSE_ARGS...; with no arguments: nothing to undo.
undo_on_exit() {
  undo=("$@")
}

# send_in_background ARGS...: `scripts/send.sh ARGS... --wait` in the background;
# sets $since (when it started); wait_for_sender waits for it.
send_in_background() {
  since="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  scripts/send.sh "$@" --wait &
  sending=$!
}

wait_for_sender() {  # wait_for_sender: until the background send.sh ends; its exit status
  local status=0
  wait "$sending" || status=$?
  sending=""
  return "$status"
}

# stop_sender: the background send.sh, if any, ended with its producer
# container: the container killed first (a producer asked to stop would save
# what it had of the run), then send.sh, which removes a container created
# meanwhile.
stop_sender() {
  [[ -n "$sending" ]] || return 0
  local container
  container="$(producer_container_of "$sending")"
  docker rm --force "$container" >/dev/null 2>&1 || true
  kill -TERM "$sending" 2>/dev/null || true
  wait "$sending" 2>/dev/null || true
  docker rm --force "$container" >/dev/null 2>&1 || true
  sending=""
  echo "==> Stopped the sender (no run saved); the tasks it had sent stay in task_queue for the workers" >&2
}

# worker_running TASK: once a worker has received TASK since $since; sets
# $received_by to that worker and $received_at to when it logged that.
worker_running() {
  # Often: a demo acts on that moment (the crash demo's kill), so the sooner seen the better.
  local poll_seconds=0.2
  wait_until "a worker to receive '$1'" task_received "$1"
  task_received "$1"  # in this shell: the wait's subshell cannot set $received_by here
}

task_received() {  # task_received TASK: a worker received TASK since $since; sets $received_by
  # and $received_at (when its log line was written: docker's RFC 3339 UTC time)
  # shellcheck disable=SC2034  # both for the demo that called
  read -r received_by received_at < <(docker compose logs --timestamps --no-color --no-log-prefix --since "$since" \
    consumer 2>/dev/null | sed -n "s/^\([^ ]*\) \[x\] Received '$1' (\([^,)]*\).*/\2 \1/p" | head -n 1) || true
  [[ -n "$received_by" ]]
}

seconds_since() {  # seconds_since TIME: seconds from TIME (docker's RFC 3339 UTC, within a day) to now
  awk -v stamp="$1" -v now="$(now)" 'BEGIN {
    split(stamp, part, /[T:Z]/)  # date, hours, minutes, seconds
    print ((now % 86400) - (part[2] * 3600 + part[3] * 60 + part[4]) + 86400) % 86400
  }'
}

# A demo notes the faults it causes in timelines/RUN.marks (a JSON line each),
# where the producer (producer/runs.py) finds them to mark them on RUN's timelines.
forget_faults() {  # forget_faults RUN: no marks left over from an earlier RUN
  rm -f "${TIMELINES_DIR:-timelines}/$1.marks"
}

note_fault() {  # note_fault RUN WHEN LABEL: WHEN in epoch seconds or as docker inspect's time
  mkdir -p "${TIMELINES_DIR:-timelines}"
  printf '{"at": "%s", "label": "%s"}\n' "$2" "$3" >>"${TIMELINES_DIR:-timelines}/$1.marks"
}

now() {  # now: epoch seconds, to the microsecond in bash 5, to the second in macOS's bash 3.2
  local now="${EPOCHREALTIME:-$(date +%s)}"
  echo "${now/,/.}"  # EPOCHREALTIME has the locale's decimal separator
}

# --- The cluster (compose.cluster.yaml) ----------------------------------------

readonly CLUSTER_NODES="rabbitmq rabbitmq-2 rabbitmq-3"

use_cluster() {  # use_cluster: docker compose takes the cluster override, unless COMPOSE_FILE says otherwise
  if [[ -z "${COMPOSE_FILE:-}" ]]; then
    # ":" on every platform (Compose's default separator on Windows is ";").
    export COMPOSE_FILE=compose.yaml:compose.cluster.yaml COMPOSE_PATH_SEPARATOR=:
  fi
}

cluster_ctl() {  # cluster_ctl TOOL ARGS...: rabbitmqctl or rabbitmq-queues on a running node (any), quietly
  local node
  for node in $CLUSTER_NODES; do
    if [[ -n "$(docker compose ps --status running --quiet "$node" 2>/dev/null)" ]]; then
      docker compose exec -T "$node" "$@" --silent
      return
    fi
  done
  echo "no node of the cluster is running" >&2
  return 1
}

task_queue_leader() {  # task_queue_leader: the node that leads task_queue, e.g. rabbitmq-2 (empty if none)
  cluster_ctl rabbitmqctl list_queues name leader 2>/dev/null | awk '$1 == "task_queue" { sub(/^rabbit@/, "", $2); print $2 }'
}

# task_queue_quorum: one line per member of task_queue, tab-separated: node (without
# rabbit@), Raft state, up or down, commit index. The one reading of quorum_status.
# A member is up only while its node answers with a Raft state; a node that is gone
# shows `noconnection` (RabbitMQ 4.3, or a killed node on 4.0) or `{nodedown,...}`
# (a stopped node on 4.0). A member left without a majority answers pre_vote or candidate.
task_queue_quorum() {
  local status
  status="$(cluster_ctl rabbitmq-queues quorum_status task_queue --formatter table)" || return
  awk -F '\t' -v OFS='\t' 'NF {
    sub(/^rabbit@/, "", $1)
    up = $2 ~ /^(leader|follower|candidate|pre_vote|await_condition|receive_snapshot)$/ ? "up" : "down"
    print $1, $2, up, $7
  }' <<<"$status"
}

task_queue_in_sync() {  # task_queue_in_sync: three members, one leader, the same commit index on each
  task_queue_quorum 2>/dev/null | awk -F '\t' '
    $2 == "leader" { leaders++ }
    $2 == "leader" || $2 == "follower" { members++; commit[$4] = 1 }
    END { exit !(members == 3 && leaders == 1 && length(commit) == 1) }'
}

task_queue_members() {  # task_queue_members: its quorum_status in short: node, raft state, commit index
  task_queue_quorum | awk -F '\t' '
    BEGIN { printf "  %-20s %-16s %s\n", "member", "state", "commit index" }
    { printf "  %-20s %-16s %s\n", $1, $2, $4 }'
}
