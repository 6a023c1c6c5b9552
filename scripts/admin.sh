#!/usr/bin/env bash
# Print the management UI's address and the lab's login, and offer to open
# the UI's Queues page in this machine's browser.
#
# Usage: scripts/admin.sh [-h | --help] [--open | --no-open]
#   --open      open the browser without asking
#   --no-open   only print (the default when there is no terminal to ask on)
# Takes: a second.
# Changes: nothing (it may open a browser).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check_arguments 1 "--open --no-open" "$@"
choice="ask"
case "${1:-}" in
  "") ;;
  --open) choice="open" ;;
  --no-open) choice="no" ;;
esac

url="http://localhost:$(setting MANAGEMENT_PORT)/#/queues"
echo "Management UI: $url"
echo "Login:         $(setting RABBITMQ_DEFAULT_USER) / $(setting RABBITMQ_DEFAULT_PASS)"
lab_is_running || echo "Note: $NOT_RUNNING"

opener=""
for candidate in xdg-open open wslview; do
  if command -v "$candidate" >/dev/null; then opener="$candidate"; break; fi
done
if [[ "$choice" == ask && -t 0 && -n "$opener" ]]; then
  read -r -p "Would you like to monitor RabbitMQ queues? [y/N] " answer
  if [[ "$answer" == [yY]* ]]; then choice="open"; fi
fi
if [[ "$choice" == open ]]; then
  [[ -n "$opener" ]] || fail "no browser opener (xdg-open, open) found; paste the address into a browser" 1
  "$opener" "$url" >/dev/null 2>&1 &
fi
