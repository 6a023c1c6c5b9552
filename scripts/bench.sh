#!/usr/bin/env bash
# Benchmark the lab's own tools against raw pika loops, on a stack of the
# benchmark's own (project rabbitmq-lab-bench, free ports; removed at the end):
# publish rate with confirms, consume rate per prefetch, memory, image size,
# scaling over 1-8 workers, dispatch against a simulated ideal, start-up, and
# the live dashboard's cost.
# Ends with one line: ratios: publish=… consume=… scale8=… dispatch=… dashboard=…
# elastic-makespan=… elastic-cost=… (the autoscaler against a fixed pool of 6)
# With --cluster: only what replication costs, the single broker against the
# three-node cluster (confirmed publish; consume at prefetch 1 and 100).
#
# Usage: scripts/bench.sh [-h | --help]              (needs Docker and python3)
#        scripts/bench.sh dashboard    (only what the live dashboard costs the workers)
#        scripts/bench.sh --cluster    (only what replication costs)
#        scripts/bench.sh collect      (only --wait's collecting of records; no Docker)
#        scripts/bench.sh wait         (only send.sh --wait on 20,000 and 100,000 tasks)
#        scripts/bench.sh elastic      (only the autoscaler against a fixed pool of 6)
#        scripts/bench.sh tutorial     (only the student's paths: confirmed publish, the worker per prefetch)
# Takes: about ten minutes (--cluster: about six; elastic: about two; wait: about three;
# tutorial: about three; dashboard: less; collect: a minute).
# Changes: nothing of the lab: it builds images and runs, then removes, a stack
# of its own; installs the test requirements into .venv.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exit_if_help_asked "$@"
case "${1:-}" in
  "" | dashboard | collect | wait | elastic | tutorial | --cluster) (($# <= 1)) || refuse "$2" ;;
  *) refuse "$1" ;;
esac
ensure_venv
# Its stack helper and fake broker are in bench/ (the tests use them too); records.py is the producer's.
PYTHONPATH="bench:producer:." exec .venv/bin/python bench/bench.py "$@"
