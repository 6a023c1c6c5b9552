"""Collecting records: when task_queue counts as idle (no broker needed)."""

import records


def test_the_queue_counts_as_idle_only_after_looking_idle_for_a_while(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(records.time, "monotonic", lambda: clock[0])
    answers = iter([True, True, False, True, True, True])
    idle = records.SustainedIdle(lambda: next(answers))
    seen = []
    for _ in range(6):
        seen.append(idle())
        clock[0] += records.IDLE_FOR_SECONDS / 2
    assert seen == [False, False, False, False, False, True]  # the False in between starts the wait again
