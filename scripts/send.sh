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
from_caller() {  # from_caller PATH: PATH as the caller meant it, from the repo root (also C:/... on Windows)
  case "$1" in /* | [A-Za-z]:*) echo "$1" ;; *) echo "$CALLER_DIR/${1#./}" ;; esac
}
file=""
poison=""
argument=""
literal=""  # the message came after --: taken as it is
options=()
waiting=""
while (($#)); do
  case "$1" in
    --file | --dots | --heavy | --random | --seed | --timeout | --name)
      (($# >= 2)) || fail "$1 needs a value"
      if [[ "$1" == --file ]]; then file="$(from_caller "$2")"; else options+=("$1" "$2"); fi
      shift 2 ;;
    --wait) options+=("$1"); waiting=1; shift ;;
    --poison) poison=1; shift ;;
    --) shift; (($# == 1)) || fail "expected one message after --"; argument="$1"; literal=1; shift ;;
    -[0-9]* | -.[0-9]*) argument="$1"; shift ;;  # a negative count, refused below
    -*) refuse "$1" ;;
    *) [[ -z "$argument" ]] || fail "expected one COUNT or MESSAGE, got more (quote a message with spaces)"
       argument="$1"; shift ;;
  esac
done

if [[ -n "$poison" ]]; then
  [[ -z "$argument$file" ]] || fail "give --poison alone, without a COUNT, MESSAGE or --file"
elif [[ -n "$file" ]]; then
  [[ -z "$argument" ]] || fail "give either --file or a COUNT/MESSAGE, not both"
  [[ -f "$file" && -r "$file" ]] || fail "cannot read $file (a missing or unreadable file)"
  grep -q '[^[:space:],"]' "$file" || fail "$file has no tasks (expected one task per row)"
elif [[ -z "${argument//[[:space:]]/}" ]]; then
  fail "give a COUNT, a MESSAGE or --file PATH (see --help)"
elif command -v iconv >/dev/null && ! iconv -f UTF-8 -t UTF-8 <<<"$argument" >/dev/null 2>&1; then
  # Checked here: on its way into the container, Docker would turn the bytes into U+FFFD.
  fail "the message is not UTF-8 text"
elif [[ "$argument" =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]] \
  && ! [[ "$argument" =~ ^\+?[0-9]+$ && "$((10#${argument#+}))" -ge 1 ]]; then
  fail "the number of tasks must be a positive whole number, got '$argument'"
elif [[ -z "$literal" && "$argument" =~ ^[[:alpha:]]+$ ]]; then
  # One bare word (send.sh six): a count mistyped more often than a task meant.
  fail "'$argument' is not a number of tasks; to send it as the text of one task: scripts/send.sh -- $argument"
fi

require_running_lab
options+=(--expect-workers "$(running_workers)")
[[ -z "$waiting" ]] || show_dashboard
if [[ -n "$poison" ]]; then
  producer new_task.py --poison "${options[@]}"
elif [[ -n "$file" ]]; then
  producer new_task.py --file - "${options[@]}" <"$file"
else
  producer new_task.py "${options[@]}" -- "$argument"
fi
