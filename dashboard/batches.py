"""Each batch's figures, computed here with the lab's one figure engine (lab/figures.py)
from the events the dashboard holds, for the page to show as they are: the page computes
no figure. Live, every second while a page watches, the figures so far of each batch that
changed or is not over; once send.sh --wait has saved a named batch (timelines/NAME.json),
its records' figures, the terminal's own.

Bounded whatever arrives: the latest BATCHES_KEPT batches, EVENTS_PER_BATCH events each
(beyond it a batch's figures say they are of its first events only)."""

import json
import re
import time
from pathlib import Path

from lab.figures import TASK_RECORDS, drawn_segments, figures, steps
from lab.marks import read_marks

BATCHES_KEPT = 20
EVENTS_PER_BATCH = 20_000
EVENTS_READ_PER_CALL = 60_000  # a second's figures of all batches: a forged flood must not stall the dashboard
BATCH_EVENTS = (*TASK_RECORDS, "received", "quick", "sending")
FAULTS_SHOWN = 20
LOOK_FOR_UNNAMED_RUN_SECONDS = 3600
RUN_NAME = re.compile(r"^[\w.-]+$")  # a saved run's name: a file in timelines/, nowhere else


class Batch:
    def __init__(self, batch_id):
        self.id = batch_id
        self.events = []
        self.workers = set()
        self.truncated = False
        self.tasks = False  # whether a worker spoke of one of its tasks yet
        self.changed = True
        self.over = False
        self.name = None
        self.saved = None  # the saved run's figures, once send.sh --wait saved it

    def add(self, event):
        if len(self.events) >= EVENTS_PER_BATCH:
            self.truncated = True
            return
        self.events.append(event)
        self.changed = True
        if event["event"] == "sending":
            self.name = event["name"] if event["name"] and RUN_NAME.match(event["name"]) else None
        elif "worker" in event:
            self.workers.add(event["worker"])
            self.tasks = True


class Batches:
    def __init__(self, timelines=None, seen_by_broker=frozenset()):
        self.batches = {}  # batch id -> Batch, in the order their first events came
        self.timelines = Path(timelines) if timelines else None
        self.seen_by_broker = seen_by_broker  # workers the broker said attached: their batches are real
        self.runs_read = {}  # (saved run's path, its mtime) -> the batch it is of
        self.gaps = []  # (from, to) the dashboard heard no events (it lost its node); to None: still

    def current(self):
        """The batch a page shows unless told otherwise: the newest running one (a batch sent
        and not yet started does not hide one that runs), else the newest with a task, else the
        newest. Of the batches a worker the broker saw worked on, or send.sh saved, if any: a
        batch only forged events speak of never becomes the current one. (The broker's word on
        workers is heard live only: a dashboard that just started, having read the stream's last
        hour, knows the real batches by their saved runs.)"""
        batches = list(self.batches.values())
        real = [b for b in batches if b.workers & self.seen_by_broker or b.saved is not None] or batches
        for candidates in ([b for b in real if b.tasks and not b.over], [b for b in real if b.tasks], real):
            if candidates:
                return candidates[-1].id
        return None

    def add(self, events):
        for event in events:
            kind = event["event"]
            if kind in BATCH_EVENTS:
                self.batch(event["batch"]).add(event)
            elif kind in ("leaving", "gone"):  # what the worker held ends with it
                for batch in self.batches.values():
                    if event["worker"] in batch.workers and not batch.over:
                        batch.add(event)

    def batch(self, batch_id):
        if batch_id not in self.batches:
            self.batches[batch_id] = Batch(batch_id)
            while len(self.batches) > BATCHES_KEPT:  # the oldest goes, one only forged events spoke of first
                older = [key for key in self.batches if key != batch_id]
                unreal = [key for key in older if not self.batches[key].workers & self.seen_by_broker]
                del self.batches[(unreal or older)[0]]
        return self.batches[batch_id]

    def views(self, now):
        """What the page shows of each batch that changed, is not over, or was saved since: the
        current batch first, then those of workers the broker saw, then the rest, as long as
        the events read stay within EVENTS_READ_PER_CALL (the others wait for the next call)."""
        current = self.batches.get(self.current())
        ranked = sorted(self.batches.values(), key=lambda b: (b is not current, not b.workers & self.seen_by_broker))
        budget = EVENTS_READ_PER_CALL
        for batch in ranked:
            newly_saved = batch.saved is None and self.saved_run(batch) is not None
            if (batch.changed or not batch.over or newly_saved) and (budget > 0 or batch is current):
                budget -= len(batch.events)
                yield self.view(batch, now)

    def all_views(self, now):
        return [self.view(batch, now) for batch in self.batches.values()]

    def view(self, batch, now):
        batch.changed = False
        view = {"type": "batch", "batch": batch.id, "name": batch.name, "truncated": batch.truncated, "now": now}
        run = self.saved_run(batch)
        if run is not None:
            batch.over = True
            name = batch.name or (run["name"] if isinstance(run.get("name"), str) else None)
            return {**view, "name": name, "figures": run["figures"], "from_records": True,
                    "faults": run["marks"][:FAULTS_SHOWN]}  # fmt: skip
        shown = figures(batch.events, at=now)
        batch.over = shown["over"]
        began = batch.events[0].get("at", now) if batch.events else now
        missed = any(to is None or to >= began for _from, to in self.gaps)
        return {**view, "figures": shown, "from_records": False, "faults": self.faults(batch), "missed": missed}

    def faults(self, batch):
        """The faults a demo has noted so far for a named batch (timelines/NAME.marks), none before it began."""
        if not batch.name or self.timelines is None or not batch.events:
            return []
        since = batch.events[0].get("at", 0)
        return [mark for mark in read_marks(self.timelines / f"{batch.name}.marks") if mark["at"] >= since][
            :FAULTS_SHOWN
        ]

    def saved_run(self, batch):
        """The batch's saved run with its figures and segments, once send.sh --wait saved it:
        timelines/NAME.json, or, if its name never came (its "sending" event lost in a flood), a
        run saved since the batch began that names it (looked for during its first hour)."""
        if batch.saved is not None or self.timelines is None or not batch.events:
            return batch.saved
        began = batch.events[0].get("at", 0)
        if batch.name:
            paths = [self.timelines / f"{batch.name}.json"]
        elif time.time() - began < LOOK_FOR_UNNAMED_RUN_SECONDS and (
            batch.workers & self.seen_by_broker or batch.id == self.current()
        ):  # not for each batch a forger makes up
            paths = self.saved_since(began - 60)
        else:
            paths = []
        for path in paths:
            if self.batch_of(path) == batch.id:
                batch.saved = read_run(path)
                break
        return batch.saved

    def saved_since(self, moment):
        try:
            return [path for path in self.timelines.glob("*.json") if path.stat().st_mtime >= moment]
        except OSError:
            return []

    def batch_of(self, path):
        """The batch a saved run is of, or None: each version of a file read once."""
        try:
            version = (path, path.stat().st_mtime_ns)
        except OSError:
            return None
        if version not in self.runs_read:
            try:
                self.runs_read[version] = json.loads(path.read_text()).get("batch")
            except (OSError, ValueError, AttributeError):
                self.runs_read[version] = None
        return self.runs_read[version]


def read_run(path):
    """A saved run with its figures and segments (computed here for a run saved before runs
    carried them), or None if there is none or it is not one."""
    try:
        run = json.loads(path.read_text())
        events, marks = run["events"], run.get("marks", [])
        if "figures" not in run or "segments" not in run:
            run = {**run, "figures": figures(events), "segments": drawn_segments(events, marks)}
        return {**run, "marks": marks}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def replay_steps(events, most=40, work=400_000):
    """The figures so far at a few moments of a saved run, for its replay: fewer for a long one."""
    return steps(events, max(1, min(most, work // max(len(events), 1))))
