#!/usr/bin/env bash
# List the tasks in the dead-letter queue (tasks a worker rejected, or that
# were delivered too many times), or move them back to task_queue.
#
# Usage: scripts/dead-letters.sh [-h | --help] [list | requeue]     (default: list)
# Takes: a few seconds.
# Changes: list: nothing (it takes each dead letter and puts it back);
# requeue: moves every dead letter to task_queue, where the workers take it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
(($# <= 1)) || fail "unexpected argument '$2': it takes one action at most (see --help)"
action="${1:-list}"
case "$action" in
  list | requeue) ;;
  -?*) refuse "$action" ;;
  *) fail "unknown action '$action' (list or requeue)" ;;
esac
require_running_lab
producer dead_letters.py "$action"
