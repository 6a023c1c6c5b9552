"""How the producer shows things in a terminal, with rich: progress while sending
and while waiting for the records, the table of who did what, the text
timeline, two runs side by side.

On a terminal progress is a live bar with the rate and the time left. The
producer runs without a TTY (scripts/send.sh says, with LAB_TERMINAL=1, that its
caller's output is a terminal); piped, progress is plain lines, one at a time.
"""

import logging
import os
import sys
import time
import weakref

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from lab.figures import (
    FinishedTasks,
    done_records,
    figures,
    held_in_buffer,
    interrupted,
    makespan,
    natural_key,
    per_worker,
    round_robin_offsets,
    segments,
    sequence_number,
    span,
    tally,
    worker_count,
)
from lab.text import terminal_text
from lab.topology import QUEUE

SENT_LINES_UP_TO = 100  # a batch this small gets the tutorial's "[x] Sent" line per task
PIPED_EVERY_SECONDS = 5  # how often a long send prints a line when piped
NAMES_SHOWN = 8  # task names per worker in the table; a long batch gets "… and N more"
TIMELINE_WIDTH = 64
PIPED_WIDTH = 1000
CONSOLES = weakref.WeakKeyDictionary()


def console(out=None):
    """The rich console on `out` (standard output) that prints text as it is given:
    no markup, emoji codes or highlighting in task names, no wrapping of lines.
    Piped, a table is as wide as its cells: a file or a log has no width to fit.
    One console a stream, so a line printed while a progress bar is live goes above it."""
    out = out or sys.stdout
    if out not in CONSOLES:
        on_terminal = out.isatty() or os.environ.get("LAB_TERMINAL") == "1"
        CONSOLES[out] = Console(
            file=out, force_terminal=on_terminal, width=None if on_terminal else PIPED_WIDTH,
            markup=False, emoji=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    return CONSOLES[out]


class Notices(logging.Handler):
    """The producer's notices ("[!] the broker blocks publishing ..."): on a terminal, on
    their own line above the live progress bar; piped, on standard error as they come."""

    def emit(self, record):
        shown = console()
        if shown.is_terminal:
            shown.print(self.format(record))
        else:
            print(self.format(record), file=sys.stderr, flush=True)


class SendingRate(ProgressColumn):
    """The rate of confirms, e.g. "9,512 msg/s", and from it the time left to send while the
    tasks sent carry no work. Once one does, no time left: the batch lasts as long as its
    work, not as its sending."""

    def __init__(self, sending):
        super().__init__()
        self.sending, self.left = sending, TimeRemainingColumn()

    def render(self, task):
        rate = Text(f"{task.speed or 0:,.0f} msg/s")
        return rate if self.sending.units else rate + ", " + self.left.render(task) + " left"


class SendProgress:
    """Tutorial-style "[x] Sent" lines for a few tasks; for many, a bar with the rate on a
    terminal, or a line every PIPED_EVERY_SECONDS when piped, and the time left to send
    while the tasks carry no work."""

    def __init__(self, count, out=None):
        self.console, self.count = console(out), count
        self.confirmed = 0
        self.units = 0  # dots: the work the confirmed tasks ask for
        self.one_line_each = count <= SENT_LINES_UP_TO
        self.progress = Progress(
            TextColumn(" "), BarColumn(), MofNCompleteColumn(), TextColumn("sent,"), SendingRate(self),
            console=self.console, disable=self.one_line_each or not self.console.is_terminal,
        )  # fmt: skip
        self.task = self.progress.add_task("sent", total=count)
        self.progress.start()
        self.updated = self.shown = time.monotonic()

    def __call__(self, message):
        self.confirmed += 1
        self.units += message[1].count(b".")
        if self.one_line_each:
            self.console.print(f"[x] Sent {message[1].decode('utf-8', errors='replace')!r}")
            return
        now = time.monotonic()
        if now - self.updated >= 0.1 or self.confirmed == self.count:  # not for each of 50,000 confirms
            self.updated = now
            self.progress.update(self.task, completed=self.confirmed)
        if self.progress.disable and (now - self.shown >= PIPED_EVERY_SECONDS or self.confirmed == self.count):
            self.shown = now
            task = self.progress.tasks[0]
            left = task.time_remaining and not task.finished and not self.units
            left = f", {task.time_remaining:.0f} s left" if left else ""
            self.console.print(f"  {self.confirmed:,}/{self.count:,} sent, {task.speed or 0:,.0f} msg/s{left}")

    def close(self):
        self.progress.stop()


class WaitProgress:
    """Progress while waiting for the records: on a terminal a bar of the tasks done, with
    the tasks running and the work done (units: dots) out of the batch's; piped, a line per
    task done (for more than 100 tasks, per tenth of them). A task rejected gets a line
    either way. No time left: tasks differ, and a rate of tasks done says nothing of the
    work still to do. The work done is that of the tasks done, each once: not again when a
    task is done a second time, nor a "done" the broker took back (a "cut" record after it)."""

    def __init__(self, count, units=0, out=None):
        self.console, self.count, self.units = console(out), count, units
        self.units_done = 0
        self.finished, self.counted = FinishedTasks(), {}  # each task's units in units_done
        self.started = time.monotonic()
        self.running = set()
        work = (
            TextColumn("{task.fields[units_done]:,}/{task.fields[units]:,} units of work,") if units else TextColumn("")
        )
        self.progress = Progress(
            TextColumn(" "), BarColumn(), MofNCompleteColumn(), TextColumn("done, {task.fields[running]} running,"),
            work, TimeElapsedColumn(), TextColumn("so far"),
            console=self.console, disable=not self.console.is_terminal,
        )  # fmt: skip
        self.task = self.progress.add_task("done", total=count, running=0, units=units, units_done=0)
        self.progress.start()

    def __call__(self, event, done):
        if event["event"] == "started":
            self.running.add(event["message_id"])
        else:
            self.running.discard(event["message_id"])
        self.finished.add(event)
        task = event["message_id"]
        units = event["task"].count(".") if self.finished.done(task) else 0
        self.units_done += units - self.counted.get(task, 0)
        self.counted[task] = units
        if event["event"] == "rejected":
            self.console.print(
                f"  [!] {event['task']!r} rejected by {escaped(event['worker'])}: {escaped(event['reason'])}"
            )
        self.progress.update(self.task, completed=done, running=len(self.running), units_done=self.units_done)
        if self.progress.disable and event["event"] == "done" and (self.count <= 100 or done % (self.count // 10) == 0):
            elapsed = time.monotonic() - self.started
            self.console.print(f"  {done}/{self.count} done: {escaped(repr(event['task']))} by "
                               f"{escaped(event['worker'])} (at {elapsed:.1f} s)")  # fmt: skip

    def close(self):
        self.progress.stop()


escaped = terminal_text  # text from the network, as a terminal may show it (lab/text.py)


def task_names(tasks):
    """The tasks' names in the order done (the dots are the work, not the name), the first NAMES_SHOWN."""
    names = ", ".join(escaped(record["task"].rstrip(".")) for record in tasks[:NAMES_SHOWN])
    return names + (f", … and {len(tasks) - NAMES_SHOWN:,} more" if len(tasks) > NAMES_SHOWN else "")


def worker_table(events):
    """Who did which tasks, and how long each worker was busy: every worker with an attempt,
    as figures() lists them for the dashboard too (one whose only attempt was cut short: 0)."""
    table = Table(box=None, pad_edge=False)
    table.add_column("worker", min_width=11)  # the width the timeline gives a worker's name
    table.add_column("tasks", justify="right")
    table.add_column("busy s", justify="right")
    table.add_column("task names, in the order done")
    loads = per_worker(done_records(events))
    for worker in figures(events)["per_worker"]:
        tasks, busy = loads.get(worker, ([], 0.0))
        table.add_row(Text(escaped(worker)), str(len(tasks)), f"{busy:.1f}", Text(task_names(tasks)))
    return table


def makespan_line(events):
    """The makespan against its lower bound on the workers that took part."""
    figure = figures(events)
    took, bound, workers = figure["makespan"], figure["lower_bound"], figure["workers"]
    tasks = sum(row["tasks"] for row in figure["per_worker"].values())
    ratio = f" (ratio {figure['ratio']:.2f})" if figure["ratio"] is not None else ""
    on = f"{workers} worker{'s' if workers != 1 else ''}"
    return f"makespan {took:.1f} s for {tasks} tasks on {on}; lower bound {bound:.1f} s{ratio}"


def dispatch_line(records):
    """Why each worker got the tasks it got, from when each task reached its worker;
    None when no record says (clients that are not lab workers)."""
    if not any("received" in record for record in records):
        return None
    held, prefetch = held_in_buffer(records), {record.get("prefetch") for record in records}
    if held:
        rule = (
            "no prefetch limit: the broker dealt the tasks out in turn, busy or not"
            if prefetch == {0}
            else "a prefetch above 1: the broker gives a worker tasks before it has finished the last"
        )
        waited = sum(seconds for _record, seconds in held)
        return (
            f"Why: {len(held)} of {len(records)} tasks reached a worker still busy with another and "
            f"waited in its buffer, {waited:.1f} s in all ({rule})."
        )
    rule = " (prefetch 1: the broker gives a worker a new task only once it has acknowledged the last)"
    equal = len({record["task"].count(".") for record in records}) == 1  # a dot is the work
    turns = "; with tasks of equal length that looks like taking turns" if equal and len(records) > 1 else ""
    return f"Why: every task went to a worker with nothing else in hand{rule if prefetch == {1} else ''}{turns}."


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
        rows.append(f"{escaped(worker):<12}|{''.join(row)}|")
    scale = f"0 s{'':<{width - 10}}{length:>6.1f} s"
    rows.append(f"{'':<12} {scale}")
    for mark in marks:
        at, label = 13 + min(max(column(mark["at"]), 0), width - 1), mark["label"]  # 13: the row's "worker |"
        fits = at + len(label) + 2 <= 13 + width
        rows.append(" " * at + f"^ {label}" if fits else " " * max(at - len(label) - 1, 0) + f"{label} ^")
    return "\n".join(rows)


def print_run(run, marks=()):
    """The table, what became of every task, and the timeline with the faults marked on it."""
    out = console()
    records = done_records(run["events"])
    if records:
        out.print(worker_table(run["events"]))
        out.print(makespan_line(run["events"]))
        if why := dispatch_line(records):
            out.print(why)
    for start, _next_attempt in interrupted(run["events"]):
        again = next((r for r in records if r["message_id"] == start["message_id"]), None)
        after = f"; redelivered to {again['worker']}, which did it" if again and again["redelivered"] else ""
        out.print(f"  task {sequence_number(start)} was cut short on {start['worker']}{after}")
    for rejected in (e for e in run["events"] if e["event"] == "rejected"):
        out.print(f"  task {sequence_number(rejected)} was rejected by {rejected['worker']}: {rejected['reason']}")
    if unseen := run.get("done by others"):
        out.print(
            f"  {unseen} left {QUEUE} through consumers that send no records (not lab workers): done, for the broker"
        )
    if why := run.get("lost because"):
        out.print(f"  {tally(run)['lost']} lost: {why}")
    out.print(", ".join(f"{name} {value}" for name, value in tally(run).items()))
    if records:
        out.print()
        out.print(text_timeline(segments(run["events"], marks), marks=marks))


def explain_round_robin(run):
    """Which tasks each worker got, and whether they were dealt out in turn. Returns 0 if they were."""
    out = console()
    records, workers = done_records(run["events"]), worker_count(run["events"])
    offsets = round_robin_offsets(records, workers)
    for worker, (tasks, _busy) in per_worker(records).items():
        out.print(f"{escaped(worker)} got tasks {', '.join(str(sequence_number(r)) for r in tasks)}")
    if offsets is None:
        out.print(f"Not round-robin: the tasks were not dealt out in turn, every {workers}th to the same worker.")
        return 1
    out.print(
        f"Round-robin: the broker dealt the {len(records)} tasks out in turn, like cards. With {workers} workers, "
        f"the worker that got task i also got tasks i+{workers}, i+{2 * workers} ..., "
        "whether it was busy or not."
    )
    return 0


def print_comparison(first, second):
    """Two runs of the same workload side by side, and a verdict."""
    runs = [(run["name"], done_records(run["events"])) for run in (first, second)]
    both = [figures(run["events"]) for run in (first, second)]
    spans, bounds = [f["makespan"] for f in both], [f["lower_bound"] for f in both]
    table = Table("", *(name for name, _r in runs), box=None, pad_edge=False)
    for column in table.columns[1:]:
        column.justify = "right"
    for worker in sorted({w for _n, records in runs for w in per_worker(records)}, key=natural_key):
        loads = [per_worker(records).get(worker, ([], 0.0)) for _n, records in runs]
        table.add_row(f"{escaped(worker)} busy s", *(f"{busy:.1f}" for _t, busy in loads))
    table.add_row("makespan s", *(f"{value:.1f}" for value in spans))
    table.add_row("lower bound s", *(f"{value:.1f}" for value in bounds))
    table.add_row("makespan / bound", *(f"{f['ratio']:.2f}" for f in both))
    out = console()
    out.print(table)
    (slow, slow_span), (fast, fast_span) = sorted(zip((r[0] for r in runs), spans, strict=True), key=lambda x: -x[1])
    out.print(
        f"Verdict: {fast} finished the same work {slow_span / fast_span:.1f}x faster than {slow} "
        f"({fast_span:.1f} s against {slow_span:.1f} s; no schedule can beat {min(bounds):.1f} s)."
    )
