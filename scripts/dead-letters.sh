#!/usr/bin/env bash
# List the tasks in the dead-letter queue (tasks a worker rejected, or that
# were delivered too many times), or move them back to task_queue.
#
# Usage: scripts/dead-letters.sh [list | requeue]     (default: list)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

action="${1:-list}"
case "$action" in
  list | requeue) ;;
  -h | --help) sed -n '/^# Usage:/ s/^# //p' "$0"; exit 0 ;;
  *) fail "unknown action '$action' (list or requeue)" ;;
esac
require_running_lab
producer dead_letters.py "$action"
