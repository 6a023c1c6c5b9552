#!/usr/bin/env bash
# Send tasks to the lab's work queue, through the producer image, against the
# running lab. Every task is persistent and confirmed by the broker.
#
# Usage: scripts/send.sh COUNT | MESSAGE | --file PATH
#   scripts/send.sh 6                  six generated tasks, "Task 1." ... "Task 6."
#   scripts/send.sh "Hello..."         one task; each dot is one unit of work
#   scripts/send.sh --file tasks.csv   one task per row (one column, no header)
# Input is checked before anything is sent: bad input exits 2, sending nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '/^# Usage:/,/^# Input/ s/^# \{0,1\}//p' "$0"; }
fail() { echo "send.sh: $1" >&2; exit "${2:-2}"; }

file=""
argument=""
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --file)
      (($# >= 2)) || fail "--file needs a path"
      file="$2"; shift 2 ;;
    --file=*) file="${1#--file=}"; shift ;;
    --) shift; (($# == 1)) || fail "expected one message after --"; argument="$1"; shift ;;
    -[0-9]* | -.[0-9]*) argument="$1"; shift ;;  # a negative count, rejected below
    -*) fail "unknown option $1 (see --help)" ;;
    *) [[ -z "$argument" ]] || fail "expected one COUNT or MESSAGE, got more (quote a message with spaces)"
       argument="$1"; shift ;;
  esac
done

if [[ -n "$file" ]]; then
  [[ -z "$argument" ]] || fail "give either --file or a COUNT/MESSAGE, not both"
  [[ -f "$file" && -r "$file" ]] || fail "cannot read $file"
  grep -q '[^[:space:],"]' "$file" || fail "$file has no tasks (expected one task per row)"
elif [[ -z "${argument//[[:space:]]/}" ]]; then
  fail "give a COUNT, a MESSAGE or --file PATH (see --help)"
elif [[ "$argument" =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]] \
  && ! [[ "$argument" =~ ^\+?[0-9]+$ && "$((10#${argument#+}))" -ge 1 ]]; then
  fail "the number of tasks must be a positive whole number, got '$argument'"
fi

if [[ -z "$(docker compose ps --status running --quiet rabbitmq 2>/dev/null)" ]]; then
  fail "the lab is not running; start it with: docker compose up -d --scale consumer=3" 1
fi

if [[ -n "$file" ]]; then
  exec docker compose run --rm --no-deps -T producer --file - <"$file"
fi
exec docker compose run --rm --no-deps producer -- "$argument"
