"""What the records say: the figures (lab/figures.py), pure functions of the records."""

import random

import pytest

from example_runs import CRASH, FAIR, HANDED_BACK, ROUND_ROBIN, ZERO_WORK_WORKER, record
from lab import figures


def test_makespan_and_lower_bound_of_the_guide_example():
    assert figures.makespan(ROUND_ROBIN) == 18
    assert figures.makespan(FAIR) == 10
    assert figures.lower_bound(ROUND_ROBIN, 3) == figures.lower_bound(FAIR, 3) == 8  # max(24/3, 6)


def test_per_worker_load_in_natural_order():
    workers = figures.per_worker(ROUND_ROBIN + [record(10, "consumer-10", 100, 101)])
    assert list(workers) == ["consumer-1", "consumer-2", "consumer-3", "consumer-10"]
    tasks, busy = workers["consumer-3"]
    assert [figures.sequence_number(r) for r in tasks] == [3, 6, 9] and busy == 18


def test_round_robin_is_recognised_and_fair_dispatch_is_not():
    assert figures.round_robin_offsets(ROUND_ROBIN, 3) == {"consumer-1": 1, "consumer-2": 2, "consumer-3": 3}
    assert figures.round_robin_offsets(FAIR, 3) is None


def test_a_redelivered_task_counts_once_in_the_records():
    events = [*ROUND_ROBIN, {**ROUND_ROBIN[0], "worker": "consumer-2", "redelivered": True}]
    events.append({**ROUND_ROBIN[1], "event": "started"})
    assert len(figures.done_records(events)) == 9


def test_tally_answers_what_was_lost():
    assert figures.tally({"sent": 4, "events": CRASH}) == {
        "sent": 4, "done": 2, "rejected": 1, "lost": 1, "done more than once": 0, "redelivered": 1,
    }  # fmt: skip


def test_a_redelivered_task_that_took_no_time_counts_as_redelivered_once():
    # A worker sends no "started" record for a task without work: its "done" record is the attempt.
    quick = [record(1, "consumer-1", 100, 100, redelivered=True), record(2, "consumer-2", 100, 100)]
    assert figures.tally({"sent": 2, "events": quick})["redelivered"] == 1


def test_a_task_done_twice_is_counted_once_and_flagged():
    twice = [*CRASH, record(1, "consumer-3", 104, 105, redelivered=True)]
    tally = figures.tally({"sent": 3, "events": twice})
    assert (tally["done"], tally["done more than once"], tally["lost"]) == (2, 1, 0)


def test_an_attempt_under_way_keeps_the_batch_open():
    started = {"event": "started", "message_id": "b.1", "worker": "w1", "started": 1.0}
    assert figures.in_progress([started]) == {("b.1", "w1", 1.0)}
    assert figures.in_progress([started, {**started, "event": "cut", "reason": "stopped"}]) == set()
    assert figures.in_progress([started, {**started, "event": "done", "finished": 2.0}]) == set()


def test_figures_of_the_guide_example():
    found = figures.figures(FAIR)
    assert (found["makespan"], found["lower_bound"], found["workers"]) == (10, 8, 3)
    assert found["per_worker"]["consumer-2"] == {"tasks": 5, "busy": 10, "running": 0}


def test_a_worker_with_only_tasks_without_work_counts_towards_the_bound():
    found = figures.figures(ZERO_WORK_WORKER)
    assert (found["workers"], found["lower_bound"]) == (3, 2.0)  # 6 s of work / 3 workers
    assert found["per_worker"]["consumer-3"] == {"tasks": 1, "busy": 0, "running": 0}


def test_figures_list_a_worker_whose_only_attempt_was_cut_and_wait_for_a_task_done():
    assert figures.figures(HANDED_BACK)["per_worker"]["consumer-1"] == {"tasks": 0, "busy": 0.0, "running": 0}
    nothing_done = figures.figures(HANDED_BACK[:2])
    assert (nothing_done["makespan"], nothing_done["lower_bound"], nothing_done["workers"]) == (None, None, 1)


def test_finished_tasks_kept_record_by_record_agree_with_reading_all_the_records():
    draw = random.Random(5)
    for _ in range(300):
        events, finished = [], figures.FinishedTasks()
        for _ in range(12):
            kind = draw.choice(["started", "done", "done", "rejected", "cut"])
            attempt = record(draw.randint(1, 3), draw.choice(["w1", "w2"]), draw.choice([1.0, 2.0]), 3.0)
            events.append({**attempt, "event": kind})
            finished.add(events[-1])
            assert finished.tasks() == figures.finished_tasks(events), events
            assert len(finished) == len(figures.finished_tasks(events))


def lifetime(kind, worker, at):
    return {"event": kind, "worker": worker, "at": at}


@pytest.mark.parametrize(
    ("events", "present", "seconds"),
    [
        ([], ("consumer-1", "consumer-2"), 20.0),  # a fixed pool of 2 over 10 s
        ([lifetime("attached", "consumer-2", 14)], ("consumer-1",), 10 + 6),  # joined at 14
        ([lifetime("attached", "consumer-2", 12), lifetime("leaving", "consumer-2", 15)], ("consumer-1",), 10 + 3),
        ([lifetime("gone", "consumer-1", 18)], ("consumer-1",), 8),  # killed: gone
        ([lifetime("attached", "consumer-1", 5)], ("consumer-1",), 10),  # before the start: counted from it
        ([lifetime("attached", "consumer-3", 25)], (), 0),  # after the end: nothing
        ([lifetime("attached", "consumer-1", 12), lifetime("attached", "consumer-1", 13)], (), 8),  # reconnected
    ],
)
def test_worker_seconds_count_each_worker_from_its_attaching_to_its_leaving(events, present, seconds):
    assert figures.worker_seconds(events, 10, 20, present) == seconds
