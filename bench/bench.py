"""The lab's benchmark (run by scripts/bench.sh): its own tools against raw pika,
on a stack of its own. Prints a table per measurement and ends with

    ratios: publish=… consume=… scale8=… dispatch=… dashboard=… elastic-makespan=… elastic-cost=…

`bench.py dashboard` measures only what the live dashboard costs the workers.
`bench.py collect` measures only --wait's collecting of records, in this process
on a fake broker (no stack): the records per second it keeps up with.
`bench.py wait` measures only send.sh --wait on big batches (20,000 tasks of 10 ms,
100,000 of no work): how long after the last task it ends, and that none is lost.
`bench.py elastic` measures only the autoscaler (scripts/autoscale.sh): the elastic
demo's bursty workload on a fixed pool of the maximum and on the elastic pool.

These machines are noisy: compare the ratios, each measured within one run.

With --cluster it measures only what replication costs: the lab's confirmed
publish and its worker's consume rate at prefetch 1 and 100, on the single
broker and then on the three-node cluster (compose.cluster.yaml), and ends with

    cluster ratios: publish=… consume-prefetch-1=… consume-prefetch-100=…
"""

import io
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pika

import records
from display import WaitProgress
from example_runs import BATCH, record
from fake_records import RecordsChannel, connections
from lab.figures import tally
from labctl import elastic_demo
from labstack import ROOT, LabStack

PUBLISH_COUNT = 50_000
CONSUME_COUNT = 10_000
CONSUME_ROUNDS = 3
TIMING_QUEUE = "bench-timing"
PREFETCHES = (1, 10, 100, 0)
SCALE_WORKERS = (1, 2, 4, 8)
SCALE_TASKS = 48  # a multiple of every worker count
SECONDS_PER_DOT = 0.2
DISPATCH_TASKS = [1, 1, 6] * 3  # dots per task: the fair-dispatch demo's workload
DASHBOARD_PREFETCHES = (1, 100)
COLLECT_COUNTS = (20_000, 100_000)
WAIT_BATCHES = ((20_000, 1, "0.01"), (100_000, 0, "0.01"))  # tasks, dots each, SECONDS_PER_DOT


class Stack(LabStack):
    """The benchmark's stack (project rabbitmq-lab-bench, free ports)."""

    def __init__(self, timelines, project="rabbitmq-lab-bench", compose_file="compose.yaml"):
        super().__init__(project, timelines, COMPOSE_FILE=compose_file, COMPOSE_PATH_SEPARATOR=":")

    def failed(self, message):
        raise SystemExit(f"bench: {message}")

    def output(self, *command, **settings):
        """What a command that must work prints; `settings` over the stack's."""
        result = self.run(command, timeout=None, env=settings)
        if result.returncode != 0:
            self.failed(f"{' '.join(command)} failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
        return result.stdout

    def producer(self, *args):
        # benchmark.py is not in the producer's image (students run that image): lent to it for the run.
        lent = f"{ROOT / 'bench' / 'benchmark.py'}:/app/benchmark.py:ro"
        return self.output("docker", "compose", "run", "--rm", "--no-deps", "-T", "--volume", lent, "producer", *args)

    def workers(self, count, dashboard=True, **settings):
        """`count` workers with these settings (PREFETCH, SECONDS_PER_DOT), all attached."""
        scale = ("--scale", f"consumer={count}", "--scale", f"dashboard={int(dashboard)}")
        self.compose("up", "--detach", "--wait", *scale, env=settings)
        self.wait_for(lambda: self.queue()[1] == count, f"{count} workers attached", timeout=120, interval=0.02)

    def fill(self, count):
        """`count` zero-work tasks in an otherwise empty task_queue, no worker attached.
        The first and the last ask for the worker's records (reply_to TIMING_QUEUE):
        they time a lab worker from the inside, as the raw loop times itself."""
        self.compose("stop", "consumer")
        self.purge()
        with self.connect() as connection:
            channel = connection.channel()
            channel.queue_declare(TIMING_QUEUE, durable=True)
            channel.queue_purge(TIMING_QUEUE)
            for number in range(1, count + 1):
                reply_to = TIMING_QUEUE if number in (1, count) else None
                properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, reply_to=reply_to)
                channel.basic_publish("", "task_queue", f"Task {number}".encode(), properties)
        self.wait_for(lambda: self.queue()[0] == count, f"{count} tasks in task_queue", timeout=120, interval=0.02)

    def worker_seconds(self):
        """From the first task's start to the last task's end, by the worker's records of them."""
        records = []
        with self.connect() as connection:
            for _method, _properties, body in connection.channel().consume(TIMING_QUEUE, auto_ack=True):
                records += json.loads(body)
                if len(records) == 2:
                    return max(r["finished"] for r in records) - min(r["started"] for r in records)
        raise SystemExit("bench: the worker's records are missing")

    def send_and_wait(self, name, *args):
        self.output(str(ROOT / "scripts/send.sh"), *args, "--wait", "--name", name)
        run = json.loads((self.timelines / f"{name}.json").read_text())
        done = [e for e in run["events"] if e["event"] == "done"]
        return max(e["finished"] for e in done) - min(e["started"] for e in done)


def rate(output):
    return float(re.search(r"([\d.]+) msg/s", output).group(1))


def measure_publish(stack):
    stack.workers(0)
    stack.purge()
    raw = rate(stack.producer("benchmark.py", "publish-raw", str(PUBLISH_COUNT)))
    stack.purge()
    sent = stack.producer("new_task.py", str(PUBLISH_COUNT), "--dots", "0")
    lab = PUBLISH_COUNT / float(re.search(r"in ([\d.]+) s", sent).group(1))
    memory = {}
    for count in (PUBLISH_COUNT // 10, PUBLISH_COUNT):
        stack.purge()
        out = stack.producer("benchmark.py", "peak-memory", "new_task.py", str(count), "--dots", "0")
        memory[count] = int(re.search(r"peak memory (\d+) KiB", out).group(1)) / 1024
    stack.purge()
    return raw, lab, memory


def measure_consume(stack):
    """{prefetch: (raw rate, lab rate, the worker's resident MB)} on zero-work tasks, one consumer.

    Raw and lab runs alternate, CONSUME_ROUNDS of each, and each rate is the median
    of its rounds: a run here can be a quarter slower than the next for no reason.
    """
    rates = {}
    for prefetch in PREFETCHES:
        raw, lab, memory = [], [], 0.0
        for _round in range(CONSUME_ROUNDS):
            stack.fill(CONSUME_COUNT)
            raw.append(rate(stack.producer("benchmark.py", "consume-raw", str(prefetch), str(CONSUME_COUNT))))
            stack.fill(CONSUME_COUNT)
            stack.workers(1, PREFETCH=str(prefetch), SECONDS_PER_DOT="0")
            lab.append((CONSUME_COUNT - 1) / stack.worker_seconds())  # intervals between the first and last
            status = stack.compose("exec", "consumer", "cat", "/proc/1/status").stdout
            memory = max(memory, int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024)
        rates[prefetch] = (statistics.median(raw), statistics.median(lab), memory)
    return rates


def image_growth(stack):
    """Megabytes the consumer image adds to its base image."""
    base = os.environ.get("PYTHON_IMAGE", "python:3.13-slim")
    worker = stack.output("docker", "compose", "config", "--format", "json")  # the name compose.yaml gives it
    worker = json.loads(worker)["services"]["consumer"]["image"]
    inspect = ("docker", "image", "inspect", "--format", "{{.Size}}")
    size = {image: int(stack.output(*inspect, image)) for image in (base, worker)}
    return (size[worker] - size[base]) / 1e6


def measure_scaling(stack):
    seconds = {}
    for workers in SCALE_WORKERS:
        stack.workers(workers, PREFETCH="1", SECONDS_PER_DOT=str(SECONDS_PER_DOT))
        seconds[workers] = stack.send_and_wait(f"scale-{workers}", str(SCALE_TASKS))
    return {workers: (span, seconds[1] / (workers * span)) for workers, span in seconds.items()}


def simulate(dots, workers, fair):
    """Makespan of an ideal broker: round-robin deals task i to worker i mod N;
    fair dispatch gives each task to the worker free first (greedy list scheduling)."""
    busy = [0.0] * workers
    for index, units in enumerate(dots):
        worker = busy.index(min(busy)) if fair else index % workers
        busy[worker] += units * SECONDS_PER_DOT
    return max(busy)


def measure_dispatch(stack):
    results = {}
    for name, prefetch in (("round-robin", "0"), ("fair", "1")):
        stack.workers(3, PREFETCH=prefetch, SECONDS_PER_DOT=str(SECONDS_PER_DOT))
        measured = stack.send_and_wait(f"dispatch-{name}", str(len(DISPATCH_TASKS)), "--heavy", "3:6")
        results[name] = (measured, simulate(DISPATCH_TASKS, 3, fair=name == "fair"))
    return results


def measure_startup(stack):
    stack.compose("stop", "consumer")
    stack.compose("up", "--detach", "--wait", "--scale", "consumer=3")
    returned = time.monotonic()
    stack.wait_for(lambda: stack.queue()[1] == 3, "3 workers attached", timeout=120, interval=0.02)
    attached = time.monotonic() - returned
    stack.compose("restart", "rabbitmq")
    container = stack.compose("ps", "--quiet", "rabbitmq").stdout.strip()
    health = ("docker", "inspect", "--format", "{{.State.Health.Status}}", container)
    stack.wait_for(lambda: stack.output(*health).strip() == "healthy", "a healthy broker", timeout=120, interval=0.02)
    healthy = time.monotonic()
    stack.wait_for(lambda: stack.queue()[1] == 3, "3 workers back", timeout=120, interval=0.02)
    return attached, time.monotonic() - healthy


CLUSTER_PUBLISH_COUNT = 20_000
CLUSTER_PREFETCHES = (1, 100)


def measure_replication(stack):
    """(confirmed publish rate, {prefetch: consume rate}) of the lab's own tools on this stack,
    each the median of CONSUME_ROUNDS runs."""
    stack.workers(0)
    published = []
    for _round in range(CONSUME_ROUNDS):
        stack.purge()
        sent = stack.producer("new_task.py", str(CLUSTER_PUBLISH_COUNT), "--dots", "0")
        published.append(CLUSTER_PUBLISH_COUNT / float(re.search(r"in ([\d.]+) s", sent).group(1)))
    consumed = {}
    for prefetch in CLUSTER_PREFETCHES:
        rates = []
        for _round in range(CONSUME_ROUNDS):
            stack.fill(CONSUME_COUNT)
            stack.workers(1, PREFETCH=str(prefetch), SECONDS_PER_DOT="0")
            rates.append((CONSUME_COUNT - 1) / stack.worker_seconds())
        consumed[prefetch] = statistics.median(rates)
    return statistics.median(published), consumed


def compare_cluster(timelines):
    results = {}
    stacks = (("single broker", "compose.yaml"), ("3-node cluster", "compose.yaml:compose.cluster.yaml"))
    for name, compose_file in stacks:
        stack = Stack(timelines, "rabbitmq-lab-bench-replication", compose_file)
        print(f"Starting the {name}...", flush=True)
        stack.compose("up", "--detach", "--build", "--wait", "--scale", "consumer=1", timeout=900)
        try:
            results[name] = measure_replication(stack)
        finally:
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
    (single_publish, single), (cluster_publish, cluster) = results.values()
    print(f"\nReplication: the lab's tools on one broker and on three nodes (median of {CONSUME_ROUNDS} runs each)")
    print(f"  {'what':<44}{'single':>12}{'cluster':>12}{'ratio':>8}")
    print(f"  {f'publish {CLUSTER_PUBLISH_COUNT:,}, confirmed':<44}{single_publish:>10,.0f}/s"
          f"{cluster_publish:>10,.0f}/s{cluster_publish / single_publish:>8.2f}")  # fmt: skip
    for prefetch in CLUSTER_PREFETCHES:
        print(f"  {f'consume {CONSUME_COUNT:,} zero-work tasks, prefetch {prefetch}':<44}{single[prefetch]:>10,.0f}/s"
              f"{cluster[prefetch]:>10,.0f}/s{cluster[prefetch] / single[prefetch]:>8.2f}")  # fmt: skip
    consume = " ".join(f"consume-prefetch-{p}={cluster[p] / single[p]:.2f}" for p in CLUSTER_PREFETCHES)
    print(f"\ncluster ratios: publish={cluster_publish / single_publish:.2f} {consume}")


def measure_dashboard(stack):
    """{prefetch: (lab worker's rate without the dashboard, with it and a browser's
    event stream open)} on zero-work tasks, one consumer, rounds alternating."""
    rates = {}
    for prefetch in DASHBOARD_PREFETCHES:
        without, watched = [], []
        for _round in range(CONSUME_ROUNDS):
            for dashboard, rates_seen in ((False, without), (True, watched)):
                stack.fill(CONSUME_COUNT)
                stack.workers(1, dashboard=dashboard, PREFETCH=str(prefetch), SECONDS_PER_DOT="0")
                with watching(stack) if dashboard else nothing():
                    rates_seen.append((CONSUME_COUNT - 1) / stack.worker_seconds())
        rates[prefetch] = (statistics.median(without), statistics.median(watched))
    stack.workers(1)
    return rates


class watching:
    """A browser's part: the dashboard's event stream read as it comes, in a thread."""

    def __init__(self, stack):
        self.url = f"http://127.0.0.1:{stack.dashboard_port}/events"
        self.stop = threading.Event()

    def read(self):
        with urllib.request.urlopen(self.url, timeout=10) as stream:
            while not self.stop.is_set() and stream.readline():
                pass

    def __enter__(self):
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def __exit__(self, *_exc):
        self.stop.set()  # the stream sends the queues' figures every second: the thread ends by then


class nothing:
    def __enter__(self):
        pass

    def __exit__(self, *_exc):
        pass


def print_dashboard(rates):
    print(f"\nThe live dashboard's cost: consume {CONSUME_COUNT:,} zero-work tasks, one consumer "
          f"(median of {CONSUME_ROUNDS} runs each)")  # fmt: skip
    print(f"  {'prefetch':<10}{'without':>12}{'with it':>12}{'ratio':>8}")
    for prefetch, (without, watched) in rates.items():
        print(f"  {prefetch!s:<10}{without:>10,.0f}/s{watched:>10,.0f}/s{watched / without:>8.2f}")
    lowest = min(watched / without for without, watched in rates.values())
    print(f"  lowest ratio {lowest:.2f} (target >= 0.95)")
    return lowest


def measure_collecting():
    """{records: records/s} of --wait's collecting (EventListener.collect with its progress),
    a record a message as tasks that take time send them: only the CPU, not the broker."""
    rates = {}
    for count in COLLECT_COUNTS:
        done = [[record(number, "consumer-1", number, number)] for number in range(1, count + 1)]
        records.open_first = connections(RecordsChannel(done))
        progress = WaitProgress(count, out=io.StringIO())
        started = time.perf_counter()
        events, ended = records.EventListener(None, BATCH).collect(count, 600, progress)
        rates[count] = count / (time.perf_counter() - started)
        progress.close()
        if ended != "finished" or len(events) != count:
            raise SystemExit(f"bench: collecting {count:,} records ended {ended} with {len(events):,}")
    return rates


def print_collecting(rates):
    print("\nCollecting --wait's records (in-process, a fake broker: the CPU a record costs)")
    for count, per_second in rates.items():
        print(f"  {count:>7,} records  {per_second:>9,.0f} records/s")


def measure_waiting(stack):
    """send.sh --wait on big batches, three workers: {(tasks, dots): (work span s, --wait's
    end after the last task s, done, lost)}. The target: --wait ends within a few seconds
    of the last task, every task reported done."""
    results = {}
    for count, dots, per_dot in WAIT_BATCHES:
        stack.workers(3, dashboard=False, SECONDS_PER_DOT=per_dot)
        name = f"wait-{count}-{dots}"
        stack.output(str(ROOT / "scripts/send.sh"), str(count), "--dots", str(dots), "--wait", "--timeout", "1800",
                     "--name", name)  # fmt: skip
        ended = time.time()
        run = json.loads((stack.timelines / f"{name}.json").read_text())
        figures = tally(run)
        finished = [e.get("finished", e["started"]) for e in run["events"] if e["event"] == "done"]
        started = [e["started"] for e in run["events"] if e["event"] in ("started", "done")]
        results[(count, dots)] = (max(finished) - min(started), ended - max(finished), figures["done"], figures["lost"])
    return results


def print_waiting(results):
    print(
        "\nsend.sh --wait on big batches, 3 workers at prefetch 1 (target: ends within a few seconds of the last task)"
    )
    for (count, dots), (span, behind, done, lost) in results.items():
        work = f"{dots} dot of 10 ms" if dots else "no work"
        print(f"  {count:>7,} tasks, {work:<14} work {span:>6.1f} s, --wait ended {behind:>5.1f} s after the last task,"
              f" done {done:,}, lost {lost}")  # fmt: skip


def measure_elastic(stack, minimum=1, maximum=6, burst=16, pause=20):
    """The elastic demo's workload (labctl/elastic_demo.py: two bursts of `burst` two-dot tasks,
    `pause` s apart) on a fixed pool of `maximum`, then on the autoscaled pool from `minimum`
    to `maximum`, at .env's SECONDS_PER_DOT. Prints the row; its figures, each from one run."""
    lab = elastic_demo.Lab(stack.env)
    lab.resize(maximum)
    fixed = elastic_demo.measure(lab, "bench-elastic-fixed", burst, pause)
    elastic = elastic_demo.elastic(lab, minimum, maximum, "bench-elastic", burst=burst, pause=pause)
    makespan_ratio = elastic["makespan"] / fixed["makespan"]
    cost_ratio = elastic["worker_seconds"] / fixed["worker_seconds"]
    print(f"\nElastic pool ({minimum} to {maximum}) against a fixed {maximum}: bursts of {burst}, {pause} s apart")
    for name, figures in (("fixed", fixed), ("elastic", elastic)):
        print(f"  {name:<8} makespan {figures['makespan']:>6.1f} s  worker-seconds {figures['worker_seconds']:>7.1f}"
              f"  lost {figures['lost']}")  # fmt: skip
    print(f"  makespan ratio {makespan_ratio:.2f} (target <= 1.3); worker-seconds ratio {cost_ratio:.2f} "
          f"(target <= 0.6)")  # fmt: skip
    added = elastic["first_added"]
    print(f"  first added worker consuming {'-' if added is None else f'{added:.1f} s'} after the burst's first task")
    return makespan_ratio, cost_ratio, added


def main():
    if sys.argv[1:] == ["elastic"]:
        with tempfile.TemporaryDirectory() as timelines:
            stack = Stack(Path(timelines))
            stack.compose("up", "--detach", "--build", "--wait", "--scale", "consumer=1", timeout=900)
            try:
                measure_elastic(stack)
                return None
            finally:
                stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
    if sys.argv[1:] == ["wait"]:
        with tempfile.TemporaryDirectory() as timelines:
            stack = Stack(Path(timelines))
            stack.compose("up", "--detach", "--build", "--wait", "--scale", "consumer=1", timeout=900)
            try:
                return print_waiting(measure_waiting(stack))
            finally:
                stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
    if sys.argv[1:] == ["collect"]:
        return print_collecting(measure_collecting())
    with tempfile.TemporaryDirectory() as timelines:
        if sys.argv[1:] == ["--cluster"]:
            return compare_cluster(Path(timelines))
        stack = Stack(Path(timelines))
        print("Building and starting the benchmark's stack...", flush=True)
        stack.compose("up", "--detach", "--build", "--wait", "--scale", "consumer=1", timeout=900)
        try:
            if sys.argv[1:] == ["dashboard"]:
                print_dashboard(measure_dashboard(stack))
            elif sys.argv[1:] == ["tutorial"]:
                publish_ratio, (at_1, _lowest) = print_publish(stack), print_consume(stack)
                print(f"\nratios: publish={publish_ratio:.2f} consume-prefetch-1={at_1:.2f}")
            else:
                report(stack)
        finally:
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")


def print_publish(stack):
    """The confirmed bulk publish against raw pika's unconfirmed loop; its ratio."""
    raw, lab, memory = measure_publish(stack)
    print(f"\nPublish {PUBLISH_COUNT:,} persistent messages")
    print(f"  raw pika, no confirms          {raw:>8,.0f} msg/s")
    print(f"  send.sh, pipelined confirms    {lab:>8,.0f} msg/s   ratio {lab / raw:.2f}  (target >= 0.8)")
    small, large = sorted(memory)
    print(f"  send.sh peak memory: {memory[small]:.1f} MB for {small:,} tasks, {memory[large]:.1f} MB for {large:,}")
    return lab / raw


def print_consume(stack):
    """The lab's worker against raw pika's consumer at each prefetch; the prefetch-1 ratio and the lowest."""
    rates = measure_consume(stack)
    print(f"\nConsume {CONSUME_COUNT:,} zero-work tasks, one consumer (median of {CONSUME_ROUNDS} runs each)")
    print(f"  {'prefetch':<10}{'raw pika':>12}{'lab worker':>12}{'ratio':>8}{'worker memory':>16}")
    for prefetch, (raw_rate, lab_rate, memory) in rates.items():
        print(
            f"  {prefetch or 'no limit'!s:<10}{raw_rate:>10,.0f}/s{lab_rate:>10,.0f}/s"
            f"{lab_rate / raw_rate:>8.2f}{memory:>13.1f} MB"
        )
    at_1 = rates[1][1] / rates[1][0]
    lowest = min(lab_rate / raw_rate for raw_rate, lab_rate, _memory in rates.values())
    print(f"  prefetch 1 ratio {at_1:.2f} (target >= 0.9: the lesson's setting); lowest {lowest:.2f}; "
          "worker memory target < 40 MB")  # fmt: skip
    return at_1, lowest


def report(stack):
    publish_ratio = print_publish(stack)
    _at_1, consume_ratio = print_consume(stack)
    print(f"  the consumer image adds {image_growth(stack):.1f} MB to its base image (target < 20)")

    scaling = measure_scaling(stack)
    print(f"\nScaling: {SCALE_TASKS} tasks of {SECONDS_PER_DOT} s, prefetch 1")
    for workers, (span, efficiency) in scaling.items():
        print(f"  {workers} workers  {span:>6.2f} s  efficiency {efficiency:.2f}  (target >= 0.9)")

    dispatch = measure_dispatch(stack)
    print(f"\nDispatch demo workload {DISPATCH_TASKS} dots x {SECONDS_PER_DOT} s on 3 workers")
    for name, (measured, ideal) in dispatch.items():
        print(f"  {name:<12} measured {measured:.2f} s, simulated ideal {ideal:.2f} s, ratio {ideal / measured:.2f}")

    attached, back = measure_startup(stack)
    print("\nStartup")
    print(f"  all consumers attached {attached:.2f} s after `docker compose up --wait` returned (target < 2)")
    print(f"  all consumers back {back:.2f} s after the restarted broker was healthy (target < 5)")

    print_collecting(measure_collecting())
    print_waiting(measure_waiting(stack))

    dispatch_ratio = min(ideal / measured for measured, ideal in dispatch.values())
    dashboard_ratio = print_dashboard(measure_dashboard(stack))
    elastic_makespan, elastic_cost, _added = measure_elastic(stack)
    print(
        f"\nratios: publish={publish_ratio:.2f} consume={consume_ratio:.2f} "
        f"scale8={scaling[8][1]:.2f} dispatch={dispatch_ratio:.2f} dashboard={dashboard_ratio:.2f} "
        f"elastic-makespan={elastic_makespan:.2f} elastic-cost={elastic_cost:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
