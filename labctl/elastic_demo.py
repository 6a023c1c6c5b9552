"""Demo: a fixed pool against an elastic one, on the same bursty workload.

Usage: scripts/demo-elastic.sh [-h | --help] [--min N] [--max N] [--burst N] [--pause S]
  scripts/demo-elastic.sh                       1 and 6 workers, bursts of 16 tasks
Runs the same workload three times: a burst of --burst two-dot tasks, a pause of --pause
seconds, a second burst; on a fixed pool of --min workers, on a fixed pool of --max, then on
an elastic pool (scripts/autoscale.sh --min N --max N --per-worker 4 --every 1
--down-after 10, its lines shown as it decides). Prints, for each: the makespan (the first
task's start to the last one done), the worker-seconds (the pool's cost over that time: each
worker counted from when it attached to when it left, busy or not) and the tasks lost; saves
the pools over time and the figures side by side as timelines/elastic.png, and each burst's
run as timelines/elastic-POOL-1.json and -2.json.
Options: --min N (default 1), --max N (6), --burst N tasks (16), --pause S seconds (20).
Exit status: 0 when every task was done, 1 when one was not or the lab fails, 2 for bad arguments.
Takes: about three minutes with the defaults and .env's SECONDS_PER_DOT of 1.
Changes: the number of running workers (back to what it was at the end, Ctrl+C included);
sends its tasks to task_queue; saves the runs and the chart under timelines/.
"""

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika

from lab.brokers import open_first
from lab.figures import makespan, segments, span, tally, worker_seconds
from lab.topology import QUEUE
from labctl.arguments import Parser
from labctl.running_lab import Broker, Pool, Refused, Unreachable, lab_settings

ROOT = Path(__file__).resolve().parents[1]
DOTS = 2
PER_WORKER = 4
DOWN_AFTER = 10
LIFETIME = ("attached", "leaving", "gone")


class Tap:
    """The workers' attached/leaving/gone events while it runs, in a thread of its own
    (its own connection: pika is not thread-safe)."""

    def __init__(self, settings):
        self.broker, self.heard, self.stop = Broker(settings), [], threading.Event()
        self.broker.read()  # connected and bound before the workload starts, or Unreachable
        self.thread = threading.Thread(target=self.listen, daemon=True)
        self.thread.start()

    def listen(self):
        while not self.stop.wait(0.5):
            self.heard += [event for event in self.broker.events() if event["event"] in LIFETIME]

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.heard += [event for event in self.broker.events() if event["event"] in LIFETIME]
        self.broker.close()
        return self.heard


class Lab:
    """The running lab, as the demo drives it (`env`: the environment of every command)."""

    def __init__(self, env):
        self.env = env
        self.settings = lab_settings(env=env)
        self.pool = Pool(self.settings.project, functools.partial(subprocess.run, env=env))
        self.started = []  # background processes of a workload, ended on the way out

    def resize(self, workers):
        """`workers` workers, every one attached to task_queue."""
        result = self.pool.compose("up", "--detach", "--wait", "--no-recreate", "--scale", f"consumer={workers}",
                                   "consumer")  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"demo-elastic.sh: docker compose up failed: {result.stderr.strip()[-300:]}")
        deadline = time.monotonic() + 120
        while (self.consumers() or 0) < workers:  # a student's own worker may be attached too
            if time.monotonic() > deadline:
                raise SystemExit(f"demo-elastic.sh: {workers} workers did not attach within 120 s")
            time.sleep(0.5)

    def consumers(self):
        user, password = self.settings.user, self.settings.password
        parameters = [pika.ConnectionParameters(host, port, credentials=pika.PlainCredentials(user, password))
                      for host, port, _management in self.settings.brokers]  # fmt: skip
        try:
            with open_first(parameters) as connection:
                return connection.channel().queue_declare(QUEUE, passive=True).method.consumer_count
        except (pika.exceptions.AMQPError, OSError):
            return None

    def start(self, command, **kwargs):
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, **kwargs)
        self.started.append(process)
        return process

    def end_started(self, signalled):
        """End the background processes, and any sender's producer container left behind
        (lib.sh names it after its send.sh). `signalled`: they had the signal too (Ctrl+C in
        a terminal reaches the whole process group) and end by themselves; a second signal
        would cut their own clean-up short."""
        for process in self.started:
            if not signalled and process.poll() is None:
                process.terminate()  # send.sh passes it on to its producer; the autoscaler stops
        for process in self.started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.args[0].endswith("send.sh"):
                self.pool.run(["docker", "rm", "--force", f"{self.settings.project}-producer-{process.pid}"],
                              capture_output=True, check=False)  # fmt: skip
        self.started = []


def workload(lab, name, burst, pause):
    """Two bursts of `burst` tasks, `pause` seconds apart, each sent with send.sh --wait:
    the two runs as saved."""
    send = [str(ROOT / "scripts/send.sh"), str(burst), "--dots", str(DOTS), "--wait", "--name"]
    quiet = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = lab.start([*send, f"{name}-1"], **quiet)
    time.sleep(pause)
    second = lab.start([*send, f"{name}-2"], **quiet)
    for process in (first, second):
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"demo-elastic.sh: send.sh failed ({process.returncode}): {(err or out).strip()[-500:]}")
    timelines = Path(lab.env.get("TIMELINES_DIR") or "timelines")
    return [json.loads((timelines / f"{name}-{part}.json").read_text()) for part in (1, 2)]


def measure(lab, name, burst, pause):
    """The workload on the pool as it is now: its figures, and the pool's size over time."""
    present = lab.pool.workers()
    tap = Tap(lab.settings)
    try:
        runs = workload(lab, name, burst, pause)
    finally:
        lifetimes = tap.close()
    events = [event for run in runs for event in run["events"]]
    records = segments(events)
    start, end = span(records)
    return {
        "makespan": makespan(records),
        "worker_seconds": worker_seconds(lifetimes, start, end, present),
        "lost": sum(tally(run)["lost"] for run in runs),
        "done": sum(tally(run)["done"] for run in runs),
        "sent": sum(run["sent"] for run in runs),
        "first_added": first_added(events, present, start),
        "pool": pool_over_time(lifetimes, present, start, end),
    }


def first_added(events, present, start):
    """Seconds from the first task's start to the first task started by a worker not in the
    pool at the start (None if none joined)."""
    added = [e["started"] for e in events if e["event"] == "started" and e["worker"] not in present]
    return min(added) - start if added else None


def pool_over_time(lifetimes, present, start, end):
    """[(seconds from start, workers)] at each change, from the workers' attached/leaving events."""
    there, steps = set(present), [(0.0, len(present))]
    for event in sorted(lifetimes, key=lambda e: e["at"]):
        if not start <= event["at"] <= end:
            continue
        (there.add if event["event"] == "attached" else there.discard)(event["worker"])
        steps.append((event["at"] - start, len(there)))
    return [*steps, (end - start, len(there))]


def elastic(lab, minimum, maximum, name, *, burst, pause):
    """The workload on a pool of `minimum` that the autoscaler sizes, up to `maximum`."""
    lab.resize(minimum)
    command = [sys.executable, "-m", "labctl.autoscale", "--min", str(minimum), "--max", str(maximum),
               "--per-worker", str(PER_WORKER), "--every", "1", "--down-after", str(DOWN_AFTER)]  # fmt: skip
    autoscaler = lab.start(command)
    try:
        return measure(lab, name, burst, pause)
    finally:
        autoscaler.send_signal(signal.SIGINT)  # as Ctrl+C: it ends, leaving the pool as it is
        autoscaler.wait(timeout=60)


def report(results):
    print(f"\n{'pool':<16}{'makespan':>10}{'worker-seconds':>16}{'lost':>6}  first added worker at")
    for pool, figures in results.items():
        added = figures["first_added"]
        print(f"{pool:<16}{figures['makespan']:>9.1f}s{figures['worker_seconds']:>15.1f}s{figures['lost']:>6}  "
              f"{'-' if added is None else f'{added:.1f} s'}")  # fmt: skip


def save_chart(results, png):
    import matplotlib  # noqa: PLC0415 - slow to load: only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (pools, bars) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    for pool, figures in results.items():
        seconds, workers = zip(*figures["pool"], strict=True)
        pools.step(seconds, workers, where="post", label=pool)
    pools.set(xlabel="seconds from the first task", ylabel="workers", title="The pool over the workload")
    pools.legend()
    names = list(results)
    width = 0.4
    for offset, (key, label) in enumerate((("makespan", "makespan (s)"), ("worker_seconds", "worker-seconds"))):
        positions = [number + (offset - 0.5) * width for number in range(len(names))]
        bars.bar(positions, [results[name][key] for name in names], width, label=label)
    bars.set_xticks(range(len(names)), names)
    bars.set(title="Time and cost")
    bars.legend()
    figure.tight_layout()
    figure.savefig(png)
    plt.close(figure)


def parse(argv):
    parser = Parser("demo-elastic.sh", __doc__.strip())
    for option, default in (("--min", 1), ("--max", 6), ("--burst", 16), ("--pause", 20)):
        parser.add_argument(option, type=int, default=default)
    options = parser.parse_args(argv)
    if not 1 <= options.min < options.max:
        parser.error(f"--min must be at least 1 and below --max, got --min {options.min} --max {options.max}")
    if options.burst < 1 or options.pause < 0:
        parser.error("--burst must be 1 or more and --pause 0 or more")
    return options


def run_all(lab, options):
    """The workload on the three pools: {pool: figures}."""
    results = {}
    for workers in (options.min, options.max):
        print(f"==> A fixed pool of {workers}: a burst of {options.burst}, {options.pause} s, another", flush=True)
        lab.resize(workers)
        results[f"fixed {workers}"] = measure(lab, f"elastic-fixed-{workers}", options.burst, options.pause)
    print(f"==> The elastic pool, {options.min} to {options.max}: the autoscaler's lines", flush=True)
    results["elastic"] = elastic(
        lab, options.min, options.max, "elastic-elastic", burst=options.burst, pause=options.pause
    )
    return results


class StoppedAlone(KeyboardInterrupt):
    """SIGTERM: to this process alone, not to the processes it started (as Ctrl+C would be)."""


def stopped_alone(_signum, _frame):
    raise StoppedAlone


def main(argv=None):
    options = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, stopped_alone)
    try:
        lab = Lab(os.environ.copy())
        found = len(lab.pool.workers())
    except Refused as exc:
        print(f"demo-elastic.sh: {exc}", file=sys.stderr)
        return 1
    if lab.consumers() is None:
        print(
            "demo-elastic.sh: the lab's broker does not answer; scripts/doctor.sh tells what is wrong", file=sys.stderr
        )
        return 1
    signalled = False
    try:
        results = run_all(lab, options)
    except (KeyboardInterrupt, Unreachable, Refused) as exc:
        signalled = type(exc) is KeyboardInterrupt  # Ctrl+C, not StoppedAlone
        print(f"==> Stopped early{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return {KeyboardInterrupt: 130, StoppedAlone: 143}.get(type(exc), 1)
    finally:
        lab.end_started(signalled)
        print(f"==> Back to the {found} workers found at the start", flush=True)
        lab.resize(found)
    report(results)
    png = Path(lab.env.get("TIMELINES_DIR") or "timelines") / "elastic.png"
    save_chart(results, png)
    print(f"Chart: {png}")
    return 0 if all(figures["lost"] == 0 and figures["done"] == figures["sent"] for figures in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
