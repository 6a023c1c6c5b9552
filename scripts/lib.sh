#!/usr/bin/env bash
# Shared by the lab's bash entry points, which source it: the repo root as the working
# directory, argument checks and errors, the running lab, the producer image run from
# bash (send.sh needs no Python here), and the .venv the host's programs (labctl/) run in.
#
# Usage: source "$(dirname "$0")/lib.sh"     (from a script in scripts/)
# Takes: no time.
# Changes: nothing on its own.

header() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"; }  # header SCRIPT: its help
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  [[ "$*" == -h || "$*" == --help ]] && header "$0" && exit 0
  echo "lib.sh: source it from a script; it does nothing on its own" >&2 && exit 2
fi

readonly CALLER_DIR="$PWD" && cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1  # the caller's paths are from CALLER_DIR
# shellcheck disable=SC2034  # check-worker.sh's: the longest a script waits for the lab; a test may shorten it
readonly WAIT_SECONDS="${LAB_WAIT_SECONDS:-180}"

from_caller() {  # from_caller PATH: PATH as the caller meant it, from the repo root (also C:/... on Windows)
  case "$1" in /* | [A-Za-z]:*) echo "$1" ;; *) echo "$CALLER_DIR/${1#./}" ;; esac
}

fail() { echo "$(basename "$0"): $1" >&2; exit "${2:-2}"; }  # fail MESSAGE [STATUS]: one line, exit STATUS (2: bad input)

exit_if_help_asked() {  # exit_if_help_asked ARGS...: with -h or --help (before a --), the header comment and exit 0
  local arg
  for arg; do
    [[ "$arg" != -- ]] || return 0
    [[ "$arg" != -h && "$arg" != --help ]] || { header "scripts/$(basename "$0")"; exit 0; }
  done
}

refuse() {  # refuse ARG: one line saying the script does not take ARG, exit 2
  if [[ "$1" == -?* && "$1" != -[0-9]* ]]; then fail "unknown option $1 (see --help)"; fi
  fail "unexpected argument '$1' (see --help)"
}

positive_whole_number() {  # positive_whole_number WHAT VALUE: VALUE, or fail
  [[ "$2" =~ ^[0-9]+$ && "$((10#$2))" -ge 1 ]] || fail "$1 must be a positive whole number, got '$2'"
  echo "$((10#$2))"
}

# setting NAME: from the shell if set there, else from .env's plain NAME=value lines, as
# Compose resolves it. Not `docker compose config`: doctor.sh reads ports when Compose fails.
setting() { local value="${!1:-}"; [[ -n "$value" ]] || value="$(sed -n "s/^$1=//p" .env | tail -n 1)"; echo "$value"; }

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }  # port_in_use PORT: something here accepts on PORT

# compose_ps ARGS...: docker compose ps ARGS..., asked up to three times. It lists the containers,
# then inspects each: one removed in between (a worker scaled down meanwhile) fails it.
compose_ps() {
  docker compose ps "$@" 2>/dev/null || { sleep 0.5 && docker compose ps "$@" 2>/dev/null; } \
    || { sleep 1 && docker compose ps "$@"; }
}

running_workers() { compose_ps --status running --quiet consumer | wc -l; }

lab_is_running() {  # a broker runs: the single one, or any node of the cluster (grep reads all: pipefail)
  compose_ps --status running --services 2>/dev/null | grep -x -E 'rabbitmq(-[0-9]+)?' >/dev/null
}

require_running_lab() {  # or stop with why: Docker's error, the broker's state, a port another program holds
  lab_is_running && return
  local why name port ours
  if ! why="$(docker compose ps --all --format '{{.Status}}' rabbitmq 2>&1)"; then
    why="docker compose: $(head -n 1 <<<"$why")"
  else
    [[ -z "$why" ]] || why="its broker container is '$why'"
    ours="$(docker compose ps --format '{{range .Publishers}}{{.PublishedPort}}{{"\n"}}{{end}}' 2>/dev/null || true)"
    for name in AMQP_PORT MANAGEMENT_PORT DASHBOARD_PORT; do
      port="$(setting "$name")"
      if port_in_use "$port" && ! grep -q -x "$port" <<<"$ours"; then
        why="${why:+$why; }$name $port is in use by another program"
      fi
    done
  fi
  fail "the lab is not running${why:+ ($why)}; start it with: docker compose up -d --scale consumer=3; scripts/doctor.sh tells what is wrong" 1
}

compose_quietly() {  # compose_quietly ARGS...: docker compose ARGS..., without progress lines that report no error
  local status=0
  docker compose "$@" 2>&1 | awk '/Bake/ || (/^ *Container/ && !/[Ee]rror|unhealthy|[Ee]xited/) { next } { print; fflush() }' \
    || status=$?
  return "$status"
}

compose_or_stop() {  # compose_or_stop ARGS...: compose_quietly ARGS..., or stop the script (exit 1)
  compose_quietly "$@" || fail "docker compose $1 failed (its error is above); scripts/doctor.sh tells what is wrong and the fix" 1
}

# producer PROGRAM ARGS...: a program of the producer image, as the caller's user (root: the
# image's, in group 0), saving runs to $TIMELINES_DIR. In a process group of its own (set -m):
# a signal reaches it through end_producer, for it to say what it had done (`docker compose
# run` alone would leave its container running). Told if its output is a terminal, how wide.
producer() {
  local timelines="${TIMELINES_DIR:-timelines}" user=() status=0 input=/dev/stdin on_terminal="" columns=""
  mkdir -p "$timelines"
  local shown_as="$timelines"  # the folder as the caller can use it
  [[ "$CALLER_DIR" == "$PWD" ]] || shown_as="$(cd "$timelines" && pwd)"
  if [[ "$(id -u)" == 0 ]]; then chmod g+rwx "$timelines"; else user=(--user "$(id -u):$(id -g)"); fi
  producer_container="${COMPOSE_PROJECT_NAME:-rabbitmq-lab}-producer-$$"
  [[ ! -t 0 ]] || input=/dev/null  # a terminal is no stdin for a background group
  if [[ -t 1 ]]; then
    on_terminal=1
    columns="$(stty size </dev/tty 2>/dev/null | cut -d ' ' -f 2)" || true
  fi
  local callers_traps && callers_traps="$(trap -p INT TERM HUP)" && set -m
  # ${user[@]+...}: an empty array under `set -u` in macOS's bash 3.2. Compose adds an empty line to stderr on failure.
  docker compose run --rm --no-deps -T --name "$producer_container" ${user[@]+"${user[@]}"} \
    --env "LAB_COMMAND=scripts/$(basename "$0")" --env "LAB_TERMINAL=$on_terminal" --env "COLUMNS=${columns#0}" \
    --env "TIMELINES_SHOWN_AS=$shown_as" \
    --volume "$(cd "$timelines" && pwd):/app/timelines" producer "$@" <"$input" 2> >(grep --line-buffered -v '^$' >&2) &
  producer_run=$! && set +m
  trap 'end_producer INT 130' INT && trap 'end_producer TERM 143' TERM && trap 'end_producer HUP 129' HUP
  wait "$producer_run" || status=$?
  trap - INT TERM HUP
  eval "$callers_traps"
  return "$status"
}

end_producer() {  # end_producer SIGNAL STATUS: pass SIGNAL on to the producer, let it report, exit STATUS
  trap - INT TERM HUP
  local attempts=50  # 10 s for its container to be created; then docker compose itself is ended
  until docker kill --signal "$1" "$producer_container" >/dev/null 2>&1; do
    kill -0 "$producer_run" 2>/dev/null || break  # it ended by itself
    ((--attempts)) || { kill -s KILL "$producer_run" 2>/dev/null || true; break; }
    sleep 0.2  # its container is still being created
  done
  wait "$producer_run" 2>/dev/null || true
  docker rm --force "$producer_container" >/dev/null 2>&1 || true  # --rm is undone if compose died first
  exit "$2"
}

# ensure_venv [REQUIREMENTS]: .venv with what they name (default tests/requirements.txt), pip
# run only when they changed (labctl/venv.py, in .venv's Python or, before there is one, python3)
ensure_venv() {
  local python=.venv/bin/python
  [[ -x "$python" ]] || python=python3
  "$python" -m labctl.venv "$@"
}

run_host_python() {  # run_host_python MODULE ARGS...: python -m MODULE ARGS... in .venv, as this script's process
  [[ -x .venv/bin/python ]] || command -v python3 >/dev/null || fail "it needs python3 (3.11 or newer) here; see the README's What you need" 1
  ensure_venv labctl/requirements.txt
  exec .venv/bin/python -m "$@"
}
