"""What the workers' records of a batch say: pure functions of the records
(lists of dicts as records.py collects them), no broker, no output.

A record is {"event": "started" | "done" | "rejected" | "cut", "worker",
"task", "message_id": "<batch>.<n>", "started", "finished", "redelivered", ...}.
"""

import itertools
import re
from operator import itemgetter

FINAL = ("done", "rejected")  # what can become of a task


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


class FinishedTasks:
    """finished_tasks(events) kept as the records come, one at a time: collecting a
    batch must not read every earlier record again at each new one."""

    attempt = staticmethod(itemgetter("message_id", "worker", "started"))

    def __init__(self):
        self.taken_back = set()  # attempts with a "cut" record
        self.finals = {}  # task -> its final records not taken back, as (event, attempt)

    def add(self, event):
        attempt = self.attempt(event)
        if event["event"] == "cut":
            self.taken_back.add(attempt)
            finals = self.finals.get(event["message_id"], set())
            finals.discard(("done", attempt))
            if not finals:
                self.finals.pop(event["message_id"], None)
        elif event["event"] == "rejected" or (event["event"] == "done" and attempt not in self.taken_back):
            self.finals.setdefault(event["message_id"], set()).add((event["event"], attempt))

    def __len__(self):
        return len(self.finals)

    def tasks(self):
        return set(self.finals)

    def done(self, task):
        """Whether task (a message id) has a "done" record that no "cut" took back."""
        return any(kind == "done" for kind, _attempt in self.finals.get(task, ()))


def in_progress(events):
    """Attempts a lab worker started and has not ended (done, rejected or cut)."""
    attempt = itemgetter("message_id", "worker", "started")
    ended = {attempt(e) for e in events if e["event"] != "started"}
    return {attempt(e) for e in events if e["event"] == "started"} - ended


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


def held_in_buffer(records):
    """[(done record, seconds it waited)] for each task that reached its worker while the
    worker was still busy with the one before, so it waited in the worker's prefetch
    buffer: what round-robin does and prefetch 1 never does. Records without "received"
    (not a lab worker's) are left out."""
    return [
        (record, record["started"] - record["received"])
        for tasks, _busy in per_worker(records).values()
        for before, record in itertools.pairwise(tasks)
        if "received" in record and before["finished"] > record["received"]
    ]


def tally(run):
    """What became of the batch's tasks: the question "what was lost?" answered."""
    finished = {}
    for event in acknowledged(run["events"]):
        if event["event"] in FINAL:
            finished.setdefault(event["message_id"], []).append(event)
    done = {task: events for task, events in finished.items() if events[0]["event"] == "done"}
    unseen = run.get("done by others", 0)  # by consumers that send no records
    # Stopped looking, the tasks not seen done may still be: they are not called lost.
    lost = "not seen done (stopped looking)" if run.get("stopped looking") else "lost"
    return {
        "sent": run["sent"],
        "done": len(done),
        "rejected": len(finished) - len(done),
        **({"done by others": unseen} if unseen else {}),
        lost: run["sent"] - len(finished) - unseen,
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


def segments(events, marks=()):
    """What a timeline draws: each task done, and each attempt cut short (marked "cut",
    drawn until the next attempt at the task started, until its worker started another
    task, or until a mark says its worker was killed ("killed consumer-2"), whichever
    came first: the dashboard's live view ends it when the broker sees the worker go)."""
    starts, kills = {}, {}
    for event in events:
        starts.setdefault(event["worker"], set()).add(event["started"])
    for mark in marks:
        kills.setdefault(mark["label"].removeprefix("killed "), set()).add(mark["at"])

    def cut_end(start, retry):
        later = [moment for moment in starts[start["worker"]] | kills.get(start["worker"], set())
                 if moment > start["started"]]  # fmt: skip
        ends = [moment for moment in (retry, min(later, default=None)) if moment is not None]
        return min(ends, default=start["started"])

    cut = [{**start, "finished": cut_end(start, retry), "cut": True} for start, retry in interrupted(events)]
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


def figures(events):
    """The batch's figures, as the terminal, the PNG and the dashboard show them: makespan
    (of the timeline's segments), lower bound on the workers that took part, and per worker
    (each that recorded an attempt, in natural order) the tasks done and the busy seconds.
    Makespan and bound are None while no task is done."""
    records, workers = done_records(events), worker_count(events)
    loads = per_worker(records)
    rows = {}
    for worker in sorted({event["worker"] for event in events}, key=natural_key):
        tasks, busy = loads.get(worker, ([], 0.0))
        rows[worker] = {"tasks": len(tasks), "busy": busy}
    return {
        "makespan": makespan(segments(events)) if records else None,
        "lower_bound": lower_bound(records, workers) if records else None,
        "workers": workers,
        "per_worker": rows,
    }


def worker_seconds(events, start, end, present=()):
    """The pool's cost from `start` to `end`: the seconds each worker was there, summed.
    A worker is there from its "attached" event (or `start`, for those in `present`, there
    already) to its "leaving" or "gone" event (or `end`), busy or not."""
    since = dict.fromkeys(present, start)
    paid = 0.0
    for event in sorted(events, key=lambda e: e["at"]):
        worker, at = event["worker"], min(max(event["at"], start), end)
        if event["event"] == "attached":
            since.setdefault(worker, at)
        elif event["event"] in ("leaving", "gone") and worker in since:
            paid += at - since.pop(worker)
    return paid + sum(end - moment for moment in since.values())
