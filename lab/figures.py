"""The lab's one figure engine: what the workers' records of a batch say, as the
terminal, the PNG, check-worker's timeline and the dashboard show it. Pure functions
of the records (lists of dicts as lab/schema.py describes them), no broker, no output.

A record is {"event": "started" | "done" | "rejected" | "cut", "worker",
"task", "message_id": "<batch>.<n>", "started", "finished", "redelivered", ...}.
The dashboard's live events (schema.py) may come too: "quick" counts of tasks with no
work, "received", "leaving" and "gone" (a worker's attempts end), "sending".

A new figure is added here, to figures(): every place that shows a batch's figures
takes them from it (docs/architecture.md).
"""

import itertools
import re
from bisect import bisect_left, bisect_right
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
    """Tasks are numbered in the order they were sent: message_id is "<batch>.<n>" (0 for
    a client's message without such an id)."""
    number = str(record.get("message_id") or "").rsplit(".", 1)[-1]
    return int(number) if number.isascii() and number.isdigit() else 0


def natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def done_records(events):
    """The first "done" record of each task, by when it was done, whatever order the records
    came in (a redelivered task can be done twice)."""
    first = {}
    for event in acknowledged(events):
        if event["event"] != "done":
            continue
        earlier = first.get(event["message_id"])
        if earlier is None or event["finished"] < earlier["finished"]:
            first[event["message_id"]] = event
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
    of_task, place = {}, []  # message id -> its attempts' start times in order; each start's place there
    for start in starts:
        times = of_task.setdefault(start["message_id"], [])
        place.append(len(times))
        times.append(start["started"])
    cut = []
    for start, index in zip(starts, place, strict=True):
        if (start["message_id"], start["worker"], start["started"]) not in finished:
            times = of_task[start["message_id"]]
            cut.append((start, times[index + 1] if index + 1 < len(times) else None))
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

    moments = {worker: sorted(times | kills.get(worker, set())) for worker, times in starts.items()}

    def cut_end(start, retry):
        after = moments[start["worker"]]
        later = bisect_right(after, start["started"])  # the worker's next start or kill
        ends = [moment for moment in (retry, after[later] if later < len(after) else None) if moment is not None]
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


TASK_RECORDS = ("started", "done", "rejected", "cut")


def moment(event):
    """When an event happened: a record's own time, else when it was told ("at")."""
    kind = event["event"]
    if kind == "done":
        return event["finished"]
    if kind in ("started", "rejected"):
        return event["started"]
    return event.get("at", event.get("started", 0.0))  # a "cut" record has no time of its own


def running(events, at):
    """The attempts (their "started" records) running at moment `at`: started, not ended by
    a record, and neither a later attempt at the task nor at another task by the same worker
    started, nor the worker left or gone since (then the attempt was cut short)."""
    attempt = itemgetter("message_id", "worker", "started")
    ended = {attempt(e) for e in events if e["event"] in ("done", "rejected", "cut")}
    starts = [e for e in events if e["event"] == "started"]
    latest_of_task, latest_of_worker = {}, {}
    for start in starts:
        task, worker = start["message_id"], start["worker"]
        latest_of_task[task] = max(latest_of_task.get(task, start["started"]), start["started"])
        latest_of_worker[worker] = max(latest_of_worker.get(worker, start["started"]), start["started"])
    departed = {}
    for event in events:
        if event["event"] in ("leaving", "gone"):
            departed.setdefault(event["worker"], []).append(event["at"])
    for moments in departed.values():
        moments.sort()

    def left_since(start):
        moments = departed.get(start["worker"], [])
        first = bisect_left(moments, start["started"])
        return first < len(moments) and moments[first] <= at

    return [
        start for start in starts
        if attempt(start) not in ended
        and latest_of_task[start["message_id"]] == start["started"]
        and latest_of_worker[start["worker"]] == start["started"]
        and not left_since(start)
    ]  # fmt: skip


def waiting(events, at):
    """Tasks received into a worker's buffer at moment `at` and not yet started or ended there."""
    task_and_worker = itemgetter("message_id", "worker")
    moved = {task_and_worker(e) for e in events if e["event"] in TASK_RECORDS}
    departed = {e["worker"]: e["at"] for e in events if e["event"] in ("leaving", "gone")}
    return [
        e for e in events
        if e["event"] == "received" and task_and_worker(e) not in moved and departed.get(e["worker"], -1) < e["at"]
    ]  # fmt: skip


def figures(events, at=None):
    """The batch's figures, as every place shows them: makespan (of the timeline's segments:
    from the first attempt started to the last task done), lower bound on the workers that
    took part and the makespan's ratio to it (None without a bound: tasks with no work), tasks
    done (each once), rejected, and per worker (each that recorded an attempt, in natural
    order) the tasks done and the busy seconds.

    at=None: the final figures of the records (the terminal's, the saved run's). at=T: the
    figures so far at moment T, of what had happened by then: a task running counts as busy
    until T, the makespan runs to T, and "over" says whether the batch was over at T (nothing
    running or waiting, and every task sent, if a "sending" event said how many, accounted
    for). Makespan, bound and ratio are None while no task is done (or, so far, running)."""
    if at is not None:
        events = [event for event in events if moment(event) <= at]
    tasks = [event for event in events if event["event"] in TASK_RECORDS]
    quick = [event for event in events if event["event"] == "quick"]  # the dashboard's counts of tasks with no work
    records = done_records(tasks)
    now_running = running(events, at) if at is not None else []
    names = {event["worker"] for event in tasks} | {event["worker"] for event in quick}
    rows = {worker: {"tasks": 0, "busy": 0.0, "running": 0} for worker in sorted(names, key=natural_key)}
    for worker, (done, busy) in per_worker(records).items():
        rows[worker].update(tasks=len(done), busy=busy)
    for event in quick:
        rows[event["worker"]]["tasks"] += event["count"]
    for start in now_running:
        rows[start["worker"]]["running"] += 1
        rows[start["worker"]]["busy"] += at - start["started"]
    durations = [r["finished"] - r["started"] for r in records] + [at - s["started"] for s in now_running]
    durations += [0.0] if quick else []
    ends = [r["finished"] for r in records] + [event["at"] for event in quick]
    starts = [s["started"] for s in segments(tasks)] + [event["at"] for event in quick]
    end = at if now_running else max(ends, default=None)
    rejected = {e["message_id"] for e in acknowledged(tasks) if e["event"] == "rejected"} - {
        r["message_id"] for r in records
    }
    done_count = sum(row["tasks"] for row in rows.values())
    sent = next((e["tasks"] for e in reversed(events) if e["event"] == "sending"), None)
    over = at is None or (
        not now_running and not waiting(events, at) and (sent is None or done_count + len(rejected) >= sent)
    )
    makespan = end - min(starts) if end is not None else None
    lower_bound = max(sum(durations) / len(rows), max(durations)) if durations else None
    return {
        "makespan": makespan,
        "lower_bound": lower_bound,
        "ratio": makespan / lower_bound if makespan is not None and lower_bound else None,  # 1.0 is the best
        "workers": len(rows),
        "per_worker": rows,
        "tasks": done_count,
        "rejected": len(rejected),
        "running": len(now_running),
        "over": over,
    }


def drawn_segments(events, marks=()):
    """The timeline's segments (segments()) as a saved run keeps them for a replay to draw:
    the tasks done (each once) and the attempts cut short, in the order they started."""
    shown = ("worker", "message_id", "task", "redelivered", "started", "finished", "received", "prefetch")
    drawn = [
        {**{key: segment[key] for key in shown if key in segment}, "state": "cut" if segment.get("cut") else "done"}
        for segment in segments(events, marks)
    ]
    return sorted(drawn, key=lambda s: (s["started"], natural_key(s["worker"]), str(s["message_id"])))


def with_figures(run, marks=()):
    """A saved run with what every place draws and shows of it: its figures and segments."""
    return {**run, "figures": figures(run["events"]), "segments": drawn_segments(run["events"], marks)}


def steps(events, count):
    """The figures so far at its start and `count` moments evenly spread over the batch after
    it (a replay shows the last one reached), the last at its end."""
    times = [moment(event) for event in events if event["event"] in TASK_RECORDS]
    if not times:
        return []
    start, end = min(times), max(times)
    moments = [start + (end - start) * n / count for n in range(count + 1)]
    return [{"at": at, **figures(events, at)} for at in moments]


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
