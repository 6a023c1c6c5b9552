"""Size the lab's pool of workers from task_queue, as KEDA and HPA size a deployment.

Usage: scripts/autoscale.sh [-h | --help] [--min N] [--max N] [--per-worker N]
                            [--every S] [--down-after S] [--activation N]
  scripts/autoscale.sh                                   1 to 6 workers, 4 messages each
  scripts/autoscale.sh --min 0 --max 4 --down-after 60   a pool that sleeps when idle
Every S seconds it reads task_queue (ready and unacknowledged messages), decides the pool
(labctl/scaling.py: ceil(messages / per-worker) within min and max; up at once; down only
to the highest recommendation of the last --down-after seconds; 0 only with --min 0, after
that window with no messages above --activation) and applies it with
`docker compose up -d --no-recreate --scale consumer=N`. One line per poll: messages
(ready / unacked), the recommendation, the pool before -> after, why; a line for each task
a scale-down handed back to the queue (from the workers' events); a line when the broker
stops answering (the pool is kept) and when it answers again.
Runs in the foreground beside the running lab; Ctrl+C ends it.
Exit status: 0 when ended by Ctrl+C or SIGTERM, 1 when it cannot run (no lab, a refused
login), 2 for bad arguments.
Takes: until you end it.
Changes: the number of running workers (consumer containers); publishes a "scaled" event
per poll to lab.events (the dashboard hears them). Ended, it leaves the pool as it is.
"""

import signal
import sys
import threading
import time

from labctl.arguments import Parser
from labctl.running_lab import Broker, Pool, Refused, Unreachable, lab_settings
from labctl.scaling import Rule, Scaler

# A quorum queue's unacknowledged count in the management API follows the queue's tick: up to
# 5 s behind (RabbitMQ 4.3.6). A shorter window would scale down on a count that has not yet
# seen the tasks just taken, and stop the busy workers that took them.
COUNT_LAG_SECONDS = 5


def run(rule, every, broker, pool, stop, *, out=print, clock=time.monotonic):
    """Poll, decide, apply, say so, until `stop` is set. The pool is left as it is."""
    try:
        poll(rule, every, broker, pool, stop, out=out, clock=clock)
    except Refused:
        if not stop.is_set():
            raise  # else Ctrl+C reached a docker compose call too and ended it: the stop asked for


def poll(rule, every, broker, pool, stop, *, out, clock):
    scaler, unreachable, stopped_here = Scaler(rule), None, set()
    while not stop.is_set():
        workers = pool.workers()
        try:
            ready, unacked = broker.read()
        except Unreachable as exc:
            if unreachable is None:
                out(f"{stamp()} broker not answering ({exc}); the pool stays at {len(workers)}")
            unreachable = str(exc)
            stop.wait(every)
            continue
        if unreachable is not None:
            out(f"{stamp()} broker answering again; deciding from its counts")
            unreachable = None
        decision = scaler.decide(clock(), ready, unacked, len(workers))
        out(f"{stamp()} messages {decision.messages} ({ready} ready / {unacked} unacked)  recommended "
            f"{decision.recommended}  workers {decision.before} -> {decision.workers}  {decision.why}")  # fmt: skip
        if decision.workers != decision.before:
            if (failed := pool.scale(decision.workers)) and stop.is_set():
                break  # Ctrl+C ended docker compose up too
            stopped_here = after_scaling(decision, failed, workers, pool, stopped_here, out=out)
        broker.tell({"event": "scaled", "at": time.time(), "ready": ready, "unacked": unacked,
                     "recommended": decision.recommended, "before": decision.before,
                     "workers": decision.workers, "why": decision.why})  # fmt: skip
        for event in broker.events():  # a task cut short by a worker this autoscaler stopped
            if event["event"] == "cut" and event["worker"] in stopped_here:
                out(f"{stamp()} the scale-down handed {event['task']!r} back to the queue "
                    f"({event['worker']}: {event['reason'][:80]}; another worker takes it)")  # fmt: skip
        stop.wait(every)


def after_scaling(decision, failed, workers, pool, stopped_here, *, out):
    """The workers this autoscaler has stopped, once the pool was scaled as decided (or FAILED to be)."""
    if failed:
        out(f"{stamp()} docker compose up failed ({failed}); the pool stays as it was")
        return stopped_here
    if decision.workers < decision.before:
        return stopped_here | (workers - pool.workers())
    return stopped_here - pool.workers()  # a name used again is a new worker


def stamp():
    return time.strftime("%H:%M:%S")


def parse(argv):
    parser = Parser("autoscale.sh", __doc__.strip())
    parser.add_argument("--min", type=int, default=1, dest="minimum")
    parser.add_argument("--max", type=int, default=6, dest="maximum")
    parser.add_argument("--per-worker", type=int, default=4)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--down-after", type=float, default=30.0)
    parser.add_argument("--activation", type=int, default=0)
    options = parser.parse_args(argv)
    rule = Rule(options.minimum, options.maximum, options.per_worker, options.down_after, options.activation)
    if problem := rule.problem():
        parser.error(problem)
    if rule.down_after < COUNT_LAG_SECONDS:
        parser.error(f"--down-after must be at least {COUNT_LAG_SECONDS} s (task_queue's unacknowledged count "
                     f"lags that much), got {options.down_after:g}")  # fmt: skip
    if not 0.1 <= options.every <= 30:
        parser.error(f"--every must be 0.1 to 30 seconds, got {options.every:g}")
    return rule, options.every


def main(argv=None):
    rule, every = parse(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def request_stop(_signum, _frame):
        stop.set()  # a docker compose call under way finishes first (Pool runs it in a process group of its own)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    broker = None
    try:
        settings = lab_settings()
        broker, pool = Broker(settings), Pool(settings.project)
        running = pool.compose("ps", "--status", "running", "--services").stdout.split()
        if not any(service.startswith("rabbitmq") for service in running):
            raise Refused("the lab is not running; start it with: docker compose up -d --scale consumer=1")
        print(f"Autoscaling the workers: {rule.minimum} to {rule.maximum}, {rule.per_worker} messages each, "
              f"polling every {every:g} s, down after {rule.down_after:g} s; Ctrl+C ends it "
              "(the pool stays as it is)", flush=True)  # fmt: skip
        run(rule, every, broker, pool, stop, out=lambda line: print(line, flush=True))
    except Refused as exc:
        print(f"autoscale.sh: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.close()
    print(f"{stamp()} stopped; the pool stays as it is", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
