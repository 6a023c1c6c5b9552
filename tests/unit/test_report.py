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
    lines = report.table(ROUND_ROBIN).splitlines()
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
    assert json.loads((tmp_path / "fair.json").read_text()) == {**run, "marks": []}  # no fault marked


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


# consumer-1 starts task 1 first and dies; task 2 starts later; task 1 is done again last.
CUT_FIRST = [
    started(record(1, "consumer-1", 100, 0)),
    started(record(2, "consumer-2", 102, 104)),
    record(2, "consumer-2", 102, 104),
    started(record(1, "consumer-3", 105, 107, redelivered=True)),
    record(1, "consumer-3", 105, 107, redelivered=True),
]


def test_one_makespan_from_the_first_attempt_started_even_one_cut_short(capsys):
    assert report.makespan(report.segments(CUT_FIRST)) == 7  # not 5, from task 2's start
    report.print_run({"workers": 3, "sent": 2, "events": CUT_FIRST})
    out = capsys.readouterr().out
    assert "makespan 7.0 s for 2 tasks" in out and out.rstrip().endswith("7.0 s")  # the table, the timeline
    figure = report.timeline_figure([("cut", report.segments(CUT_FIRST), [])])
    assert figure.axes[0].get_title() == "cut: makespan 7.0 s"


def test_compare_uses_the_same_makespan_and_the_workers_of_the_records(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    report.compare({"name": "cut", "events": CUT_FIRST}, {"name": "fair", "events": FAIR}, "both")
    rows = {line[:22].strip(): line[22:].split() for line in capsys.readouterr().out.splitlines()}
    assert rows["makespan s"] == ["7.0", "10.0"]
    assert rows["lower bound s"] == ["2.0", "8.0"]  # max(4 s / 3 workers, 2 s), max(24 s / 3, 6 s)


def test_workers_are_counted_from_the_records_not_from_those_attached_at_sending(capsys):
    late = {"workers": 1, "sent": 9, "events": ROUND_ROBIN}  # the others attached after the send
    report.print_run(late)
    assert "makespan 18.0 s for 9 tasks on 3 workers; lower bound 8.0 s (ratio 2.25)" in capsys.readouterr().out
    assert report.explain_round_robin(late) == 0
    alone = [record(1, "consumer-1", 100, 101)]
    assert report.table(alone).endswith("on 1 worker; lower bound 1.0 s (ratio 1.00)")


def contrast(first, second):
    """WCAG contrast ratio of two matplotlib colours (4.5 and up reads well)."""
    from matplotlib.colors import to_rgb  # noqa: PLC0415

    def luminance(color):
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_chart_has_a_legend_and_every_bar_label_reads_well_on_its_bar():
    events = [*CRASH, *schedule({f"consumer-{n}": [(n, 1)] for n in range(4, 14)})]  # 12 rows: every colour
    figure = report.timeline_figure([("all", report.segments(events), [])])
    axis = figure.axes[0]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "done", "redelivered (hatched)", "cut short"
    ]  # fmt: skip
    labels = [text for text in axis.texts if text.get_text().isdigit()]
    assert len(labels) == 13  # tasks 1 to 13, and task 3 cut short
    for text in labels:
        (bar,) = [c for c in axis.collections if c.get_paths()[0].get_extents().contains(*text.get_position())]
        assert contrast(text.get_color(), bar.get_facecolor()[0]) >= 4.5, text.get_text()
    assert any(text.get_text() == "3" and text.get_color() == "black" for text in labels)  # on the grey cut bar


def write_marks(path, *lines):
    path.write_text("\n".join(lines) + "\n")


def test_marks_a_demo_noted_are_saved_with_the_run_and_drawn(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    write_marks(
        tmp_path / "crash.marks",
        '{"at": "1970-01-01T00:01:40.5Z", "label": "killed consumer-1"}',  # docker inspect's time, 100.5
        '{"at": 102.25, "label": "a number"}',
        "not JSON",
        '{"at": "yesterday", "label": "no time"}',
        '{"label": "no time at all"}',
        '{"at": 50, "label": "before the run: from an earlier one"}',
    )
    run = {"name": "crash", "batch": BATCH, "workers": 3, "sent": 2, "events": CUT_FIRST}
    # Under the time axis (64 columns for 7 s, after the 13 of "worker |"), at 0.5 s and 2.25 s.
    drawn = [" " * (13 + 5) + "^ killed consumer-1", " " * (13 + 21) + "^ a number"]
    report.print_run(run)  # as send.sh --wait does, before it saves the run
    assert capsys.readouterr().out.rstrip().splitlines()[-2:] == drawn
    png = report.save_run("crash", run)
    marks = [{"at": 100.5, "label": "killed consumer-1"}, {"at": 102.25, "label": "a number"}]
    assert json.loads((tmp_path / "crash.json").read_text())["marks"] == marks and png.exists()
    (tmp_path / "crash.marks").unlink()  # the saved run keeps them
    report.print_run(report.load(tmp_path / "crash.json"))
    assert capsys.readouterr().out.rstrip().splitlines()[-2:] == drawn
    axis = report.timeline_figure([("crash", report.segments(CUT_FIRST), marks)]).axes[0]
    assert [line.get_xdata()[0] for line in axis.lines] == [0.5, 2.25]
    assert {"killed consumer-1", "a number"} <= {text.get_text() for text in axis.texts}
    assert [text.get_text() for text in axis.get_legend().get_texts()][-1] == "fault"


def test_no_marks_file_or_an_unreadable_one_means_no_marks(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "TIMELINES", tmp_path)
    run = {"name": "crash", "events": CUT_FIRST}
    assert report.marks_of(run) == []
    (tmp_path / "crash.marks").write_bytes(b"\xff\xfe")
    assert report.marks_of(run) == []


def test_the_queue_counts_as_idle_only_after_looking_idle_for_a_while(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(report.time, "monotonic", lambda: clock[0])
    answers = iter([True, True, False, True, True, True])
    idle = report.SustainedIdle(lambda: next(answers))
    seen = []
    for _ in range(6):
        seen.append(idle())
        clock[0] += report.IDLE_FOR_SECONDS / 2
    assert seen == [False, False, False, False, False, True]  # the False in between starts the wait again


def test_an_attempt_under_way_keeps_the_batch_open():
    started = {"event": "started", "message_id": "b.1", "worker": "w1", "started": 1.0}
    assert report.in_progress([started]) == {("b.1", "w1", 1.0)}
    assert report.in_progress([started, {**started, "event": "cut", "reason": "stopped"}]) == set()
    assert report.in_progress([started, {**started, "event": "done", "finished": 2.0}]) == set()
