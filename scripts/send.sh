#!/usr/bin/env bash
# Send tasks to the lab's work queue, through the producer image, against the
# running lab. Every task is persistent and confirmed by the broker.
#
# Usage: scripts/send.sh COUNT | MESSAGE | --file PATH | --poison  [OPTIONS]
#   scripts/send.sh 6                  six generated tasks, "Task 1." ... "Task 6."
#   scripts/send.sh "Hello..."         one task; each dot is one unit of work
#   scripts/send.sh -- six             one task of any text (one bare word is refused)
#   scripts/send.sh --file my.csv      your own file, one task per row (one column, no header)
#   scripts/send.sh --poison           one task the workers reject (not UTF-8),
#                                      to follow to the dead-letter queue
# Options for generated tasks (one of):
#   --dots D        D dots in every task (default 1)
#   --heavy K:H     every K-th task has H dots, the others one
#   --random LO-HI  LO to HI dots each, drawn at random; --seed S repeats a draw
# Other options:
#   --wait          wait until the tasks are done, then show who did what, the
#                   makespan and a timeline (also saved under timelines/)
#   --timeout S     give up waiting after S seconds (default 600)
#   --name NAME     save the run as timelines/NAME.json and timelines/NAME.png
# Input is checked before anything is sent: bad input exits 2, sending nothing.
# Takes: a second or so for a few tasks; with --wait, until they are done.
# Changes: adds the tasks to task_queue; with --wait, saves the run under
# timelines/ (as NAME with --name).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"

show_dashboard() {  # the live dashboard's address, once per run (a demo's sends after its first say it no more)
  [[ -z "${LAB_DASHBOARD_SHOWN:-}" && -n "$(docker compose ps --status running --quiet dashboard 2>/dev/null)" ]] || return 0
  export LAB_DASHBOARD_SHOWN=1
  local host
  host="$(setting LAB_BIND_ADDRESS)"
  [[ "$host" != 127.0.0.1 && "$host" != 0.0.0.0 && -n "$host" ]] || host=localhost
  echo "Dashboard: http://$host:$(setting DASHBOARD_PORT) (who is doing what, live)"
}

# Which argument is what; whether it is good is new_task.py's to say (producer/workload.py's
# rules, exit 2 and nothing sent). The COUNT or MESSAGE goes to it on its standard input,
# byte for byte: on its way into a container as an argument, Docker would turn bytes that
# are not UTF-8 into U+FFFD. --file's rows go the same way.
file=""
message=""
options=()
while (($#)); do
  case "$1" in
    --file | --dots | --heavy | --random | --seed | --timeout | --name)
      (($# >= 2)) || fail "$1 needs a value"
      if [[ "$1" == --file ]]; then file="$(from_caller "$2")" file_as_given="$2"; else options+=("$1" "$2"); fi
      shift 2 ;;
    --wait | --poison) options+=("$1"); shift ;;
    --) (($# == 2)) || fail "expected one message after --"; options+=(--as-text); message="$2"; shift 2 ;;
    -[0-9]* | -.[0-9]* | [^-]* | "")  # a COUNT or MESSAGE (a negative count too: refused by new_task.py)
      [[ -z "$message" ]] || fail "expected one COUNT or MESSAGE, got more (quote a message with spaces)"
      message="$1"; shift ;;
    *) refuse "$1" ;;
  esac
done
[[ -z "$file" || -z "$message" ]] || fail "give either --file or a COUNT/MESSAGE, not both"
if [[ -n "$file" ]]; then
  [[ -f "$file" && -r "$file" ]] || fail "cannot read $file (a missing or unreadable file)"
  options+=(--file - --rows-from "$file_as_given")  # the rows on stdin: the container cannot see the file
elif [[ -n "$message" ]]; then
  options+=(--message-on-stdin)
elif [[ " ${options[*]} " != *" --poison "* ]]; then
  fail "give a COUNT, a MESSAGE or --file PATH (see --help)"
fi

require_running_lab
[[ " ${options[*]} " != *" --wait "* ]] || show_dashboard
if [[ -n "$file" ]]; then
  producer new_task.py --expect-workers "$(running_workers)" "${options[@]}" <"$file"
else
  producer new_task.py --expect-workers "$(running_workers)" "${options[@]}" < <(printf '%s' "$message")
fi
