"""The numbers and pictures the lab shows, computed from workers' records."""

import json

import pytest

import report

BATCH = "b1"


def record(number, worker, started, finished, redelivered=False):
    return {
        "event": "done", "worker": worker, "task": f"Task {number}", "message_id": f"{BATCH}.{number}",
        "batch": BATCH, "redelivered": redelivered, "started": started, "finished": finished,
    }  # fmt: skip


def schedule(assignments):
    """Records for tasks run back to back: {worker: [(number, seconds), ...]}."""
    records = []
    for worker, tasks in assignments.items():
        clock = 100.0
        for number, seconds in tasks:
            records.append(record(number, worker, clock, clock + seconds))
            clock += seconds
    return records


# GUIDE's example: tasks [1,1,6]x3 on 3 workers.
ROUND_ROBIN = schedule({"consumer-1": [(1, 1), (4, 1), (7, 1)], "consumer-2": [(2, 1), (5, 1), (8, 1)],
                        "consumer-3": [(3, 6), (6, 6), (9, 6)]})  # fmt: skip
FAIR = schedule({"consumer-1": [(1, 1), (4, 1), (6, 6)], "consumer-2": [(2, 1), (5, 1), (7, 1), (8, 1), (9, 6)],
                 "consumer-3": [(3, 6)]})  # fmt: skip


def test_makespan_and_lower_bound_of_the_guide_example():
    assert report.makespan(ROUND_ROBIN) == 18
    assert report.makespan(FAIR) == 10
    assert report.lower_bound(ROUND_ROBIN, 3) == report.lower_bound(FAIR, 3) == 8  # max(24/3, 6)


def test_per_worker_load_in_natural_order():
    workers = report.per_worker(ROUND_ROBIN + [record(10, "consumer-10", 100, 101)])
    assert list(workers) == ["consumer-1", "consumer-2", "consumer-3", "consumer-10"]
    tasks, busy = workers["consumer-3"]
    assert [report.sequence_number(r) for r in tasks] == [3, 6, 9] and busy == 18


def test_round_robin_is_recognised_and_fair_dispatch_is_not():
    assert report.round_robin_offsets(ROUND_ROBIN, 3) == {"consumer-1": 1, "consumer-2": 2, "consumer-3": 3}
    assert report.round_robin_offsets(FAIR, 3) is None


def test_a_redelivered_task_counts_once_in_the_records():
    events = [*ROUND_ROBIN, {**ROUND_ROBIN[0], "worker": "consumer-2", "redelivered": True}]
    events.append({**ROUND_ROBIN[1], "event": "started"})
    assert len(report.done_records(events)) == 9


def test_table_names_each_workers_tasks_and_the_numbers():
    lines = report.table(ROUND_ROBIN, 3).splitlines()
    assert lines[1] == "consumer-1       3     3.0  Task 1, Task 4, Task 7"
    assert lines[3] == "consumer-3       3    18.0  Task 3, Task 6, Task 9"
    assert lines[-1] == "makespan 18.0 s for 9 tasks on 3 workers; lower bound 8.0 s (ratio 2.25)"


def test_a_run_of_tasks_with_no_work_is_reported_with_its_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    quick = [record(n, f"consumer-{n}", 100.0 + n / 1000, 100.0 + n / 1000) for n in (1, 2, 3)]
    run = {"name": "quick", "batch": BATCH, "workers": 3, "sent": 3, "events": quick}
    report.print_run(run)
    out = capsys.readouterr().out
    assert "lower bound 0.0 s\n" in out and "sent 3, done 3, rejected 0, lost 0" in out
    assert report.save_run("quick", run).read_bytes().startswith(b"\x89PNG")


def test_text_timeline_draws_each_task_where_and_as_long_as_it_ran():
    rows = report.text_timeline(FAIR, width=60).splitlines()
    # 60 columns for 10 s: a 6 s task is 36 columns wide.
    assert rows[2] == "consumer-3  |[================3=================]" + " " * 24 + "|"
    assert rows[0].startswith("consumer-1  |[=1==][=4==][================6=================]")
    assert rows[-1].endswith("10.0 s")


def test_runs_are_saved_as_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    run = {"name": "fair", "batch": BATCH, "workers": 3, "sent": 9, "events": FAIR}
    png = report.save_run("fair", run)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    assert json.loads((tmp_path / "fair.json").read_text()) == run


def test_compare_prints_both_runs_and_a_verdict(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    first = {"name": "round-robin", "workers": 3, "events": ROUND_ROBIN}
    second = {"name": "fair", "workers": 3, "events": FAIR}
    report.compare(first, second, "fair-dispatch")
    out = capsys.readouterr().out
    assert "makespan s" in out and "18.0" in out and "10.0" in out
    assert "Verdict: fair finished the same work 1.8x faster than round-robin" in out
    assert (tmp_path / "fair-dispatch.png").exists()


@pytest.mark.parametrize(("events", "code"), [(ROUND_ROBIN, 0), (FAIR, 1)])
def test_round_robin_command_says_whether_tasks_were_dealt_in_turn(capsys, events, code):
    assert report.explain_round_robin({"workers": 3, "events": events}) == code
    assert ("Round-robin:" in capsys.readouterr().out) is (code == 0)


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
    {**record(2, "consumer-3", 100, 100), "event": "rejected", "reason": "not valid UTF-8 text"},
]


def test_tally_answers_what_was_lost():
    assert report.tally({"sent": 4, "events": CRASH}) == {
        "sent": 4, "done": 2, "rejected": 1, "lost": 1, "done more than once": 0, "redelivered": 1,
    }  # fmt: skip


def test_a_redelivered_task_that_took_no_time_counts_as_redelivered_once():
    # A worker sends no "started" record for a task without work: its "done" record is the attempt.
    quick = [record(1, "consumer-1", 100, 100, redelivered=True), record(2, "consumer-2", 100, 100)]
    assert report.tally({"sent": 2, "events": quick})["redelivered"] == 1


def test_a_task_done_twice_is_counted_once_and_flagged():
    twice = [*CRASH, record(1, "consumer-3", 104, 105, redelivered=True)]
    figures = report.tally({"sent": 3, "events": twice})
    assert (figures["done"], figures["done more than once"], figures["lost"]) == (2, 1, 0)


def test_an_attempt_cut_short_is_found_and_drawn_until_the_next_attempt():
    assert report.interrupted(CRASH) == [(CUT, 101.0)]
    cut = [segment for segment in report.segments(CRASH) if segment.get("cut")]
    assert len(cut) == 1 and (cut[0]["worker"], cut[0]["finished"]) == ("consumer-1", 101.0)
    rows = report.text_timeline(report.segments(CRASH), width=30).splitlines()
    assert rows[0] == "consumer-1  |[~~~3~~~~]" + " " * 20 + "|"  # 1 s of 3 s on 30 columns


def test_a_run_where_every_task_was_rejected_is_reported_without_a_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    rejected = {**record(1, "consumer-1", 100, 100), "event": "rejected", "reason": "an empty task"}
    run = {"name": "poison", "batch": BATCH, "workers": 1, "sent": 1, "events": [rejected]}
    report.print_run(run)
    out = capsys.readouterr().out
    assert "task 1 was rejected by consumer-1: an empty task" in out
    assert "sent 1, done 0, rejected 1, lost 0" in out
    assert report.save_run("poison", run) is None and (tmp_path / "poison.json").exists()
