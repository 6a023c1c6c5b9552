"""Who did what, and when: the evidence behind the lab's answers.

Workers publish JSON records to the queue a task names in its reply_to
property when they start a task that takes time and when they finish (or
reject) any task, several records to a message (a JSON list) when tasks finish
fast. This module collects the records of one
batch of tasks and turns them into a per-worker table, the makespan and its
lower bound, a timeline in the terminal and the same timeline as a PNG chart.

    report.py show timelines/NAME.json            the table and timeline of a saved run
    report.py round-robin timelines/NAME.json     did worker i get tasks i, i+N, i+2N ...?
    report.py compare A.json B.json --name NAME   two runs side by side, a verdict, NAME.png
"""

import argparse
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from operator import itemgetter
from pathlib import Path

from publisher import blocking_connection, broker_hosts, reconnecting

QUEUE = "task_queue"
FINAL = ("done", "rejected")  # what can become of a task
TIMELINES = Path("timelines")


def shown(path):
    """A saved file's path as the caller of send.sh can use it (they may stand elsewhere)."""
    return Path(os.environ.get("TIMELINES_SHOWN_AS", TIMELINES)) / path.relative_to(TIMELINES)


TIMELINE_WIDTH = 64


class EventListener:
    """The records of one batch, from a queue of the batch's own that its tasks name
    in their reply_to property.

    The queue is declared before the tasks are sent, so no record is missed.
    It is durable and deleted only after going unused for 10 minutes, so the
    records survive a lost connection or a broker restart while waiting.
    """

    QUEUE_ARGUMENTS = {"x-queue-type": "classic", "x-expires": 10 * 60 * 1000}

    def __init__(self, parameters, batch):
        self.parameters, self.batch = parameters, batch
        self.queue = f"task-records.{batch}"
        if isinstance(parameters, list) and len(parameters) > 1:
            # A cluster: a classic queue lives on one node, and its records would die with it.
            self.QUEUE_ARGUMENTS = {**self.QUEUE_ARGUMENTS, "x-queue-type": "quorum"}
        with blocking_connection(parameters) as connection:
            self.declare(connection.channel())

    def declare(self, channel):
        channel.queue_declare(self.queue, durable=True, arguments=self.QUEUE_ARGUMENTS)

    def collect(self, count, timeout, progress, queue_is_idle=lambda: False, stop_requested=lambda: None):
        """The events of the batch until `count` different tasks are done (or rejected),
        or `timeout` seconds pass, or no record has come for QUIET_SECONDS while
        `queue_is_idle()` says task_queue holds nothing ready or unacknowledged: the
        tasks not heard of were taken by consumers that send no records.

        Returns (events, how it ended: "finished", "left the queue", "stopped" or "timed out")."""
        events, seen, done = [], set(), set()
        deadline = time.monotonic() + timeout
        heard = time.monotonic()
        ended = "timed out"
        for attempt in reconnecting("lost the connection while waiting for the records"):
            with attempt, blocking_connection(self.parameters) as connection:
                channel = connection.channel()
                self.declare(channel)
                for method, _properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
                    if body is not None:
                        heard = time.monotonic()
                        for event in json.loads(body):
                            key = (event["event"], event["message_id"], event["worker"], event["started"])
                            if event.get("batch") == self.batch and key not in seen:  # not one redelivered
                                seen.add(key)  # after a lost connection
                                events.append(event)
                                done = finished_tasks(events)
                                progress(event, len(done))
                        channel.basic_ack(method.delivery_tag)
                    if len(done) >= count:
                        ended = "finished"
                    elif time.monotonic() - heard >= QUIET_SECONDS and queue_is_idle():
                        ended = "left the queue"
                    elif stop_requested():
                        ended = "stopped"
                    elif time.monotonic() <= deadline:
                        continue
                    break
                channel.cancel()
                channel.queue_delete(self.queue)
        return events, ended


QUIET_SECONDS = 3  # longer than the management API's figures lag behind the queue


def task_queue_is_idle(env=os.environ):
    """Whether task_queue holds nothing ready and nothing unacknowledged, as the
    management API of the first broker that answers sees it. False when none can tell."""
    login = f"{env.get('RABBITMQ_DEFAULT_USER', '')}:{env.get('RABBITMQ_DEFAULT_PASS', '')}".encode()
    for host in broker_hosts(env):
        request = urllib.request.Request(
            f"http://{host}:15672/api/queues/%2F/task_queue",
            headers={"Authorization": "Basic " + base64.b64encode(login).decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                queue = json.load(response)
        except (OSError, ValueError):
            continue
        return queue.get("messages_ready") == 0 and queue.get("messages_unacknowledged") == 0
    return False


def acknowledged(events):
    """The events without the "done" records taken back: a worker follows a "done" with
    a "cut" record of the same attempt when its acknowledgement never reached the
    broker, which then gives the task to another worker."""
    attempt = itemgetter("message_id", "worker", "started")
    taken_back = {attempt(e) for e in events if e["event"] == "cut"}
    return [e for e in events if e["event"] != "cut" and not (e["event"] == "done" and attempt(e) in taken_back)]


def finished_tasks(events):
    """The tasks done or rejected."""
    return {e["message_id"] for e in acknowledged(events) if e["event"] in FINAL}


class Progress:
    """Live progress while waiting: one rewritten line on a terminal, else a line per task done."""

    def __init__(self, count, out=sys.stdout):
        self.count, self.out = count, out
        self.started = time.monotonic()
        self.running = set()
        self.on_terminal = out.isatty() or os.environ.get("LAB_TERMINAL") == "1"  # send.sh runs us without a TTY

    def __call__(self, event, done):
        if event["event"] == "started":
            self.running.add(event["message_id"])
        else:
            self.running.discard(event["message_id"])
        if event["event"] == "rejected":
            print(f"  [!] {event['task']!r} rejected by {event['worker']}: {event['reason']}", file=self.out)
        elapsed = time.monotonic() - self.started
        if self.on_terminal:
            bar = "#" * (20 * done // self.count)
            line = f"\r  [{bar:<20}] {done}/{self.count} done, {len(self.running)} running, {elapsed:.1f} s "
            print(line, end="", file=self.out, flush=True)
        elif event["event"] == "done" and (self.count <= 100 or done % (self.count // 10) == 0):
            task, worker = event["task"], event["worker"]
            print(f"  {done}/{self.count} done: {task!r} by {worker} ({elapsed:.1f} s)", file=self.out)

    def close(self):
        if self.on_terminal:
            print(file=self.out)


# --- What the records say ----------------------------------------------------


def sequence_number(record):
    """Tasks are numbered in the order they were sent: message_id is "<batch>.<n>"."""
    return int(record["message_id"].rsplit(".", 1)[1])


def natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def done_records(events):
    """The first "done" record of each task (a redelivered task can be done twice)."""
    first = {}
    for event in acknowledged(events):
        if event["event"] == "done":
            first.setdefault(event["message_id"], event)
    return sorted(first.values(), key=sequence_number)


def per_worker(records):
    """{worker: (task records in the order they ran, busy seconds)}, workers in natural order."""
    workers = {}
    for record in sorted(records, key=lambda r: r["started"]):
        workers.setdefault(record["worker"], []).append(record)
    return {
        worker: (tasks, sum(r["finished"] - r["started"] for r in tasks))
        for worker, tasks in sorted(workers.items(), key=lambda item: natural_key(item[0]))
    }


def tally(run):
    """What became of the batch's tasks: the question "what was lost?" answered."""
    finished = {}
    for event in acknowledged(run["events"]):
        if event["event"] in FINAL:
            finished.setdefault(event["message_id"], []).append(event)
    done = {task: events for task, events in finished.items() if events[0]["event"] == "done"}
    unseen = run.get("done by others", 0)  # by consumers that send no records
    return {
        "sent": run["sent"],
        "done": len(done),
        "rejected": len(finished) - len(done),
        **({"done by others": unseen} if unseen else {}),
        "lost": run["sent"] - len(finished) - unseen,
        "done more than once": sum(len(events) > 1 for events in done.values()),
        "redelivered": sum(attempt["redelivered"] for attempt in attempts(run["events"])),
    }


def attempts(events):
    """Each attempt at a task, once: a worker publishes a "started" record only for
    a task that takes time, and every record of an attempt has its start time."""
    unique = {}
    for event in events:
        unique.setdefault((event["message_id"], event["worker"], event["started"]), event)
    return list(unique.values())


def interrupted(events):
    """Tasks a worker started and never finished (it died, or lost the broker):
    (started record, when the next attempt started or None)."""
    finished = {(e["message_id"], e["worker"], e["started"]) for e in acknowledged(events) if e["event"] in FINAL}
    starts = sorted((e for e in events if e["event"] == "started"), key=lambda e: e["started"])
    cut = []
    for index, start in enumerate(starts):
        if (start["message_id"], start["worker"], start["started"]) not in finished:
            retry = next((e["started"] for e in starts[index + 1 :] if e["message_id"] == start["message_id"]), None)
            cut.append((start, retry))
    return cut


def segments(events):
    """What a timeline draws: each task done, and each attempt cut short (marked "cut",
    drawn until the next attempt at the task started)."""
    cut = [
        {**start, "finished": retry if retry is not None else start["started"], "cut": True}
        for start, retry in interrupted(events)
    ]
    return done_records(events) + cut


def span(records):
    """(first attempt started, last task done): attempts cut short start the span but end none of it."""
    done = [r for r in records if not r.get("cut")] or records
    return min(r["started"] for r in records), max(r["finished"] for r in done)


def makespan(records):
    """The lab's one makespan, of done records or of a timeline's segments:
    from the first attempt started (one cut short included) to the last task done."""
    start, end = span(records)
    return end - start


def worker_count(events):
    """How many workers recorded an attempt at a task of the batch (not how many were
    attached when it was sent: workers can attach later)."""
    return len({event["worker"] for event in events})


def lower_bound(records, workers):
    """No schedule on `workers` workers can beat max(total work / workers, longest task)."""
    durations = [r["finished"] - r["started"] for r in records]
    return max(sum(durations) / workers, max(durations))


def round_robin_offsets(records, workers):
    """{worker: offset} if every worker got exactly the tasks offset, offset+N, offset+2N ... else None."""
    offsets = {}
    for worker, (tasks, _busy) in per_worker(records).items():
        numbers = sorted(sequence_number(r) for r in tasks)
        expected = list(range(numbers[0], numbers[0] + workers * len(numbers), workers))
        if numbers != expected:
            return None
        offsets[worker] = numbers[0]
    return offsets if sorted(offsets.values()) == list(range(1, workers + 1)) else None


# --- Faults a demo noted ------------------------------------------------------


def moment(value):
    """Epoch seconds, from a number or from an ISO 8601 time such as docker inspect's."""
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value).timestamp()


def read_marks(path):
    """The moments in a NAME.marks file, a JSON object a line: {"at": epoch seconds or
    an ISO 8601 time, "label": "killed consumer-3"}. No file, or a line that is not
    such an object, gives no mark: a chart without its marks beats no chart."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        return []
    marks = []
    for line in lines:
        try:
            mark = json.loads(line)
            marks.append({"at": moment(mark["at"]), "label": str(mark["label"])})
        except (ValueError, TypeError, KeyError):
            continue
    return marks


def marks_of(run):
    """The faults marked on a run: saved with it, else those in timelines/NAME.marks
    that fall within the run (the file may be left over from an earlier run)."""
    if "marks" in run:
        return run["marks"]
    if not run.get("name") or not run["events"]:
        return []
    start = min(event["started"] for event in run["events"])
    end = max(event.get("finished", event["started"]) for event in run["events"])
    return [mark for mark in read_marks(TIMELINES / f"{run['name']}.marks") if start <= mark["at"] <= end]


# --- How it is shown -----------------------------------------------------------


def table(events):
    """Who did which tasks, and the makespan against its lower bound on the workers that took part."""
    records, workers = done_records(events), worker_count(events)
    lines = [f"{'worker':<12} {'tasks':>5} {'busy s':>7}  task names, in the order done"]
    for worker, (tasks, busy) in per_worker(records).items():
        names = ", ".join(r["task"].rstrip(".") for r in tasks)  # the dots are the work, not the name
        lines.append(f"{worker:<12} {len(tasks):>5} {busy:>7.1f}  {names}")
    took, bound = makespan(segments(events)), lower_bound(records, workers)
    ratio = f" (ratio {took / bound:.2f})" if bound else ""  # tasks with no work have no lower bound
    on = f"{workers} worker{'s' if workers != 1 else ''}"
    lines.append(f"makespan {took:.1f} s for {len(records)} tasks on {on}; lower bound {bound:.1f} s{ratio}")
    return "\n".join(lines)


def text_timeline(records, width=TIMELINE_WIDTH, marks=()):
    """One row per worker, each task a [==n==] bar as long as it ran; [~~n~~] if cut short;
    under the time axis a ^ where each mark is, with its label."""
    start, _end = span(records)
    length = makespan(records) or 1.0

    def column(moment):
        return round((moment - start) / length * width)

    rows = []
    for worker, (tasks, _busy) in per_worker(records).items():
        row = [" "] * width
        for record in tasks:
            left, right = column(record["started"]), max(column(record["finished"]), column(record["started"]) + 1)
            label = str(sequence_number(record))
            fill = "~" if record.get("cut") else "="
            bar = f"[{label:{fill}^{right - left - 2}}]" if right - left >= len(label) + 2 else fill * (right - left)
            row[left:right] = bar
        rows.append(f"{worker:<12}|{''.join(row)}|")
    scale = f"0 s{'':<{width - 10}}{length:>6.1f} s"
    rows.append(f"{'':<12} {scale}")
    for mark in marks:
        at, label = 13 + min(max(column(mark["at"]), 0), width - 1), mark["label"]  # 13: the row's "worker |"
        fits = at + len(label) + 2 <= 13 + width
        rows.append(" " * at + f"^ {label}" if fits else " " * max(at - len(label) - 1, 0) + f"{label} ^")
    return "\n".join(rows)


CUT_COLOR, FAULT_COLOR = "lightgray", "crimson"


def label_color(face):
    """Black or white, whichever contrasts more with the colour `face` (WCAG relative luminance)."""
    from matplotlib.colors import to_rgb  # noqa: PLC0415 - see timeline_figure

    red, green, blue = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(face))
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.179 else "white"


def timeline_figure(runs):
    """Each (title, segments, marks) run as a timeline chart, one above the other, on one time scale."""
    import matplotlib  # noqa: PLC0415 - imported only when a chart is drawn: it is slow to load

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    rows = sum(len(per_worker(records)) for _title, records, _marks in runs)
    figure, axes = plt.subplots(len(runs), 1, figsize=(11, 1.4 + 0.5 * rows + 0.6 * len(runs)), squeeze=False)
    longest = max(makespan(records) for _title, records, _marks in runs)
    legend = [
        Patch(facecolor="C0", edgecolor="white", label="done"),
        Patch(facecolor="C0", edgecolor="white", hatch="//", label="redelivered (hatched)"),
        Patch(facecolor=CUT_COLOR, edgecolor="white", hatch="xx", label="cut short"),
    ]
    for axis, (title, records, marks) in zip(axes[:, 0], runs, strict=True):
        start, _end = span(records)
        workers = per_worker(records)
        for row, (tasks, _busy) in enumerate(workers.values()):
            for record in tasks:
                left, length = record["started"] - start, record["finished"] - record["started"]
                color = CUT_COLOR if record.get("cut") else f"C{row % 10}"
                hatch = "xx" if record.get("cut") else "//" if record["redelivered"] else None
                axis.broken_barh([(left, length)], (row - 0.4, 0.8), facecolors=color, hatch=hatch, edgecolor="white")
                label = str(sequence_number(record))
                axis.text(left + length / 2, row, label, ha="center", va="center", color=label_color(color), fontsize=8)
        for index, mark in enumerate(marks):
            axis.axvline(mark["at"] - start, color=FAULT_COLOR, linestyle="--", linewidth=1.2)
            axis.annotate(  # each label a line lower than the last, so that close marks' labels do not overlap
                mark["label"], (mark["at"] - start, 1), xycoords=("data", "axes fraction"), xytext=(3, -3 - 11 * index),
                textcoords="offset points", ha="left", va="top", color=FAULT_COLOR, fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )  # fmt: skip
        fault = [Line2D([], [], color=FAULT_COLOR, linestyle="--", label="fault")] if marks else []
        axis.legend(handles=legend + fault, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        axis.set_yticks(range(len(workers)), list(workers))
        axis.invert_yaxis()
        axis.set_title(f"{title}: makespan {makespan(records):.1f} s")
        axis.set_xlabel("seconds since the first task started")
        axis.set_xlim(0, longest * 1.02)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def save_png(path, runs):
    """Save the timeline_figure of the runs as a PNG."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - see timeline_figure

    figure = timeline_figure(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def save_run(name, run):
    """Keep a run, with the faults marked on it, as timelines/NAME.json and, if any
    task was done, timelines/NAME.png. Returns the PNG's path, or None."""
    run = {**run, "marks": marks_of({**run, "name": name})}
    TIMELINES.mkdir(parents=True, exist_ok=True)
    (TIMELINES / f"{name}.json").write_text(json.dumps(run, indent=1))
    if not done_records(run["events"]):
        return None
    png = TIMELINES / f"{name}.png"
    save_png(png, [(name, segments(run["events"]), run["marks"])])
    return png


def print_run(run):
    records = done_records(run["events"])
    if records:
        print(table(run["events"]))
    for start, _next_attempt in interrupted(run["events"]):
        again = next((r for r in records if r["message_id"] == start["message_id"]), None)
        after = f"; redelivered to {again['worker']}, which did it" if again and again["redelivered"] else ""
        print(f"  task {sequence_number(start)} was cut short on {start['worker']}{after}")
    for rejected in (e for e in run["events"] if e["event"] == "rejected"):
        print(f"  task {sequence_number(rejected)} was rejected by {rejected['worker']}: {rejected['reason']}")
    if unseen := run.get("done by others"):
        print(f"  {unseen} left {QUEUE} through consumers that send no records (not lab workers): done, for the broker")
    figures = tally(run)
    print(", ".join(f"{name} {value}" for name, value in figures.items()))
    if records:
        print()
        print(text_timeline(segments(run["events"]), marks=marks_of(run)))


# --- The command line, for the demos -------------------------------------------


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"report.py: cannot read the run {path}: {exc}") from exc


def explain_round_robin(run):
    records, workers = done_records(run["events"]), worker_count(run["events"])
    offsets = round_robin_offsets(records, workers)
    for worker, (tasks, _busy) in per_worker(records).items():
        print(f"{worker} got tasks {', '.join(str(sequence_number(r)) for r in tasks)}")
    if offsets is None:
        print(f"Not round-robin: the tasks were not dealt out in turn, every {workers}th to the same worker.")
        return 1
    print(
        f"Round-robin: the broker dealt the {len(records)} tasks out in turn, like cards. With {workers} workers, "
        f"the worker that got task i also got tasks i+{workers}, i+{2 * workers} ..., "
        "whether it was busy or not."
    )
    return 0


def compare(first, second, name):
    """Print two runs of the same workload side by side; save both timelines as timelines/NAME.png."""
    runs = [(run["name"], done_records(run["events"]), worker_count(run["events"])) for run in (first, second)]
    width = max(len(name) for name, _r, _w in runs) + 2
    print(f"{'':<22}" + "".join(f"{name:>{width}}" for name, _r, _w in runs))
    workers = sorted({w for _n, records, _w in runs for w in per_worker(records)}, key=natural_key)
    for worker in workers:
        loads = [per_worker(records).get(worker, ([], 0.0)) for _n, records, _w in runs]
        print(f"{worker + ' busy s':<22}" + "".join(f"{busy:>{width}.1f}" for _t, busy in loads))
    spans = [makespan(segments(run["events"])) for run in (first, second)]
    bounds = [lower_bound(records, count) for _n, records, count in runs]
    for label, values, form in (
        ("makespan s", spans, ".1f"),
        ("lower bound s", bounds, ".1f"),
        ("makespan / bound", [s / b for s, b in zip(spans, bounds, strict=True)], ".2f"),
    ):
        print(f"{label:<22}" + "".join(f"{value:>{width}{form}}" for value in values))
    (slow, slow_span), (fast, fast_span) = sorted(zip((r[0] for r in runs), spans, strict=True), key=lambda x: -x[1])
    print(
        f"Verdict: {fast} finished the same work {slow_span / fast_span:.1f}x faster than {slow} "
        f"({fast_span:.1f} s against {slow_span:.1f} s; no schedule can beat {min(bounds):.1f} s)."
    )
    png = TIMELINES / f"{name}.png"
    save_png(png, [(run["name"], segments(run["events"]), marks_of(run)) for run in (first, second)])
    print(f"Timeline chart: {shown(png)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show").add_argument("run")
    commands.add_parser("round-robin").add_argument("run")
    both = commands.add_parser("compare")
    both.add_argument("first")
    both.add_argument("second")
    both.add_argument("--name", default="comparison", help="save the chart as timelines/NAME.png")
    args = parser.parse_args(argv)
    if args.command == "show":
        print_run(load(args.run))
        return 0
    if args.command == "round-robin":
        return explain_round_robin(load(args.run))
    compare(load(args.first), load(args.second), args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
