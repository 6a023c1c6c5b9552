"""Records of small runs, for the tests of what the lab makes of them."""

BATCH = "b1"


def record(number, worker, started, finished, redelivered=False):
    return {
        "event": "done", "worker": worker, "task": f"Task {number}", "message_id": f"{BATCH}.{number}",
        "batch": BATCH, "redelivered": redelivered, "started": started, "finished": finished,
    }  # fmt: skip


def schedule(assignments, prefetch=None):
    """Records for tasks run back to back: {worker: [(number, seconds), ...]}. With a
    prefetch, as a lab worker writes them: at prefetch 0 every task reached its worker at
    the start and waited in its buffer; at prefetch 1 each came as the one before ended."""
    records = []
    for worker, tasks in assignments.items():
        clock = 100.0
        for number, seconds in tasks:
            records.append(record(number, worker, clock, clock + seconds))
            if prefetch is not None:
                records[-1] |= {"received": 100.0 if prefetch == 0 else clock, "prefetch": prefetch}
            clock += seconds
    return records


# GUIDE's example: tasks [1,1,6]x3 on 3 workers.
ROUND_ROBIN = schedule({"consumer-1": [(1, 1), (4, 1), (7, 1)], "consumer-2": [(2, 1), (5, 1), (8, 1)],
                        "consumer-3": [(3, 6), (6, 6), (9, 6)]}, prefetch=0)  # fmt: skip
FAIR = schedule({"consumer-1": [(1, 1), (4, 1), (6, 6)], "consumer-2": [(2, 1), (5, 1), (7, 1), (8, 1), (9, 6)],
                 "consumer-3": [(3, 6)]}, prefetch=1)  # fmt: skip


def started(done_record):
    return {key: value for key, value in done_record.items() if key != "finished"} | {"event": "started"}


# consumer-1 dies in the middle of task 3; the broker redelivers it to consumer-2.
CUT = {**started(record(3, "consumer-1", 100, 0)), "started": 100.0}
CRASH = [
    started(record(1, "consumer-2", 100, 101)),
    record(1, "consumer-2", 100, 101),
    CUT,
    started(record(3, "consumer-2", 101, 103, redelivered=True)),
    record(3, "consumer-2", 101, 103, redelivered=True),
    {**started(record(2, "consumer-3", 100, 0)), "event": "rejected", "reason": "not valid UTF-8 text"},
]


def cut_then_done_again(cut_on, task_2, task_1_again):
    """Task 1 started at 100 on worker `cut_on` and never finished; task 2 done as
    (worker, started, finished); then task 1 done again, redelivered, as (worker, started, finished)."""
    return [
        started(record(1, cut_on, 100, 0)),
        started(record(2, *task_2)),
        record(2, *task_2),
        started(record(1, *task_1_again, redelivered=True)),
        record(1, *task_1_again, redelivered=True),
    ]


# consumer-1 starts task 1 first and dies; task 2 starts later; task 1 is done again last.
CUT_FIRST = cut_then_done_again("consumer-1", ("consumer-2", 102, 104), ("consumer-3", 105, 107))
# consumer-1 dies in the middle of task 1, then (restarted) starts task 2 before task 1's retry.
CUT_THEN_OWN_TASK = cut_then_done_again("consumer-1", ("consumer-1", 102, 103), ("consumer-2", 104, 106))

# consumer-1 is stopped in the middle of task 1 and hands it back ("cut" record); consumer-2 does it again.
HANDED_BACK = [
    started(record(1, "consumer-1", 100, 0)),
    {**started(record(1, "consumer-1", 100, 0)), "event": "cut", "reason": "stopped before it was done"},
    started(record(2, "consumer-2", 100, 102)),
    record(2, "consumer-2", 100, 102),
    started(record(1, "consumer-2", 103, 105, redelivered=True)),
    record(1, "consumer-2", 103, 105, redelivered=True),
]

# consumer-3 did only a task with no work: it still counts towards the lower bound (6 s / 3 workers).
ZERO_WORK_WORKER = schedule({"consumer-1": [(1, 2), (3, 2)], "consumer-2": [(2, 2)], "consumer-3": [(4, 0)]})

# consumer-1's node is killed as it acknowledges task 1: the acknowledgement is lost and no
# "cut" record takes its "done" back (the worker cannot know); the broker gives task 1 to
# consumer-2, which does it again. Task 1 is done once in the figures, by consumer-1, first.
DONE_TWICE = [
    started(record(1, "consumer-1", 100, 102)),
    started(record(2, "consumer-2", 100, 101)),
    record(2, "consumer-2", 100, 101),
    record(1, "consumer-1", 100, 102),
    started(record(1, "consumer-2", 103, 106, redelivered=True)),
    record(1, "consumer-2", 103, 106, redelivered=True),
]

# The three cases where the page once computed other figures than the terminal:
# a task rejected (at 100) before the first task is done (100.5 to 102): the rejected attempt
# is no part of the makespan (1.5 s, not 2 s);
REJECTED_FIRST = [
    {**started(record(1, "consumer-1", 100, 0)), "event": "rejected", "reason": "not valid UTF-8 text"},
    started(record(2, "consumer-2", 100.5, 102)),
    record(2, "consumer-2", 100.5, 102),
]
# a task with no work done twice (its acknowledgement lost with a killed node): done once;
QUICK_DONE_TWICE = [
    record(1, "consumer-1", 100, 100),
    record(1, "consumer-2", 100.2, 100.2, redelivered=True),
    started(record(2, "consumer-2", 100.5, 101.5)),
    record(2, "consumer-2", 100.5, 101.5),
]
# a task with no work done (at 99) before the first task with work starts (at 100): the
# makespan runs from it (3 s, not 2 s).
QUICK_FIRST = [
    record(1, "consumer-1", 99, 99),
    started(record(2, "consumer-2", 100, 102)),
    record(2, "consumer-2", 100, 102),
]

# The faults a demo noted on a run ("killed WORKER" when it killed one), by run name.
MARKS = {"crash": [{"at": 100.5, "label": "killed consumer-1"}]}

# Every run above, by name: the golden files (tests/golden) are made of these.
RUNS = {
    "round_robin": ROUND_ROBIN,
    "fair": FAIR,
    "crash": CRASH,
    "cut_first": CUT_FIRST,
    "cut_then_own_task": CUT_THEN_OWN_TASK,
    "handed_back": HANDED_BACK,
    "zero_work_worker": ZERO_WORK_WORKER,
    "done_twice": DONE_TWICE,
    "rejected_first": REJECTED_FIRST,
    "quick_done_twice": QUICK_DONE_TWICE,
    "quick_first": QUICK_FIRST,
}
