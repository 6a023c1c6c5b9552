"""What the lab prints: the table, the timeline, the tally, the round-robin verdict."""

import io
import re

import pytest
from rich.console import Console

import chart
import display
import runs
from example_runs import BATCH, CRASH, CUT, CUT_FIRST, CUT_THEN_OWN_TASK, FAIR, ROUND_ROBIN, record
from lab import figures


def table(events):
    """The table and the makespan line as print_run shows them, without the padding of the last column."""
    console = Console(file=io.StringIO(), width=120)
    console.print(display.worker_table(events))
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    return "\n".join([*lines, display.makespan_line(events)])


def test_table_names_each_workers_tasks_and_the_numbers():
    lines = table(ROUND_ROBIN).splitlines()
    assert lines[1] == "consumer-1       3     3.0  Task 1, Task 4, Task 7"
    assert lines[3] == "consumer-3       3    18.0  Task 3, Task 6, Task 9"
    assert lines[-1] == "makespan 18.0 s for 9 tasks on 3 workers; lower bound 8.0 s (ratio 2.25)"


def test_table_lists_a_worker_whose_only_attempt_was_cut_short_as_the_dashboard_does():
    lines = table(CRASH).splitlines()
    assert lines[1].split() == ["consumer-1", "0", "0.0"]  # killed in task 3: a row, as on the page
    assert len(lines) == 5 and lines[-1].startswith("makespan 3.0 s for 2 tasks on 3 workers")


def test_a_run_of_tasks_with_no_work_is_reported_with_its_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    quick = [record(n, f"consumer-{n}", 100.0 + n / 1000, 100.0 + n / 1000) for n in (1, 2, 3)]
    run = {"name": "quick", "batch": BATCH, "workers": 3, "sent": 3, "events": quick}
    display.print_run(run)
    out = capsys.readouterr().out
    assert "lower bound 0.0 s\n" in out and "sent 3, done 3, rejected 0, lost 0" in out
    assert runs.save_run("quick", run).read_bytes().startswith(b"\x89PNG")


def test_text_timeline_draws_each_task_where_and_as_long_as_it_ran():
    rows = display.text_timeline(FAIR, width=60).splitlines()
    # 60 columns for 10 s: a 6 s task is 36 columns wide.
    assert rows[2] == "consumer-3  |[================3=================]" + " " * 24 + "|"
    assert rows[0].startswith("consumer-1  |[=1==][=4==][================6=================]")
    assert rows[-1].endswith("10.0 s")


@pytest.mark.parametrize(("events", "code"), [(ROUND_ROBIN, 0), (FAIR, 1)])
def test_round_robin_command_says_whether_tasks_were_dealt_in_turn(capsys, events, code):
    assert display.explain_round_robin({"workers": 3, "events": events}) == code
    assert ("Round-robin:" in capsys.readouterr().out) is (code == 0)


def test_an_attempt_cut_short_is_found_and_drawn_until_the_next_attempt():
    assert figures.interrupted(CRASH) == [(CUT, 101.0)]
    cut = [segment for segment in figures.segments(CRASH) if segment.get("cut")]
    assert len(cut) == 1 and (cut[0]["worker"], cut[0]["finished"]) == ("consumer-1", 101.0)
    rows = display.text_timeline(figures.segments(CRASH), width=30).splitlines()
    assert rows[0] == "consumer-1  |[~~~3~~~~]" + " " * 20 + "|"  # 1 s of 3 s on 30 columns


def test_a_run_where_every_task_was_rejected_is_reported_without_a_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    rejected = {**record(1, "consumer-1", 100, 100), "event": "rejected", "reason": "an empty task"}
    run = {"name": "poison", "batch": BATCH, "workers": 1, "sent": 1, "events": [rejected]}
    display.print_run(run)
    out = capsys.readouterr().out
    assert "task 1 was rejected by consumer-1: an empty task" in out
    assert "sent 1, done 0, rejected 1, lost 0" in out
    assert runs.save_run("poison", run) is None and (tmp_path / "poison.json").exists()


def test_one_makespan_from_the_first_attempt_started_even_one_cut_short(capsys):
    assert figures.makespan(figures.segments(CUT_FIRST)) == 7  # not 5, from task 2's start
    display.print_run({"workers": 3, "sent": 2, "events": CUT_FIRST})
    out = capsys.readouterr().out
    assert "makespan 7.0 s for 2 tasks" in out and out.rstrip().endswith("7.0 s")  # the table, the timeline
    figure = chart.timeline_figure([("cut", figures.segments(CUT_FIRST), [])])
    assert figure.axes[0].get_title() == "cut: makespan 7.0 s"


def test_workers_are_counted_from_the_records_not_from_those_attached_at_sending(capsys):
    late = {"workers": 1, "sent": 9, "events": ROUND_ROBIN}  # the others attached after the send
    display.print_run(late)
    assert "makespan 18.0 s for 9 tasks on 3 workers; lower bound 8.0 s (ratio 2.25)" in capsys.readouterr().out
    assert display.explain_round_robin(late) == 0
    alone = [record(1, "consumer-1", 100, 101)]
    assert table(alone).endswith("on 1 worker; lower bound 1.0 s (ratio 1.00)")


def test_piped_a_small_send_prints_the_tutorials_line_per_task(capsys, monkeypatch):
    monkeypatch.delenv("LAB_TERMINAL", raising=False)
    progress = display.SendProgress(2)
    for text in (b"Task 1.", b"Task 2."):
        progress(("task_queue", text, None))
    progress.close()
    assert capsys.readouterr().out == "[x] Sent 'Task 1.'\n[x] Sent 'Task 2.'\n"


def test_piped_a_long_send_prints_lines_with_the_rate_not_a_bar(capsys, monkeypatch):
    monkeypatch.delenv("LAB_TERMINAL", raising=False)
    progress = display.SendProgress(1000)
    for _ in range(1000):
        progress(("task_queue", b"Task.", None))
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("  1,000/1,000 sent, ") and lines[-1].endswith(" msg/s")
    assert len(lines) <= 2  # a line every few seconds, and the last


@pytest.mark.parametrize("task", [b"Task.", b"Task"])
def test_on_a_terminal_sending_shows_a_time_left_only_for_tasks_with_no_work(capsys, monkeypatch, task):
    """Tasks with work: the batch lasts as long as the work, whatever the rate of confirms."""
    monkeypatch.setenv("LAB_TERMINAL", "1")
    progress = display.SendProgress(1000)
    for _ in range(1000):
        progress(("task_queue", task, None))
    progress.close()
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().out).strip().split("\r")[-1]
    assert "1000/1000 sent," in last and " msg/s" in last
    assert ("left" in last) == (task == b"Task")


def test_piped_waiting_prints_a_line_per_task_done_and_each_rejected(capsys, monkeypatch):
    monkeypatch.delenv("LAB_TERMINAL", raising=False)
    progress = display.WaitProgress(2)
    progress({"event": "started", "message_id": "b.1", "task": "A.", "worker": "w1", "started": 1.0}, 0)
    progress({"event": "done", "message_id": "b.1", "task": "A.", "worker": "w1", "started": 1.0}, 1)
    progress(
        {"event": "rejected", "message_id": "b.2", "task": "B", "worker": "w2", "reason": "poison", "started": 1.0}, 2
    )
    progress.close()
    assert capsys.readouterr().out.splitlines() == [
        "  1/2 done: 'A.' by w1 (at 0.0 s)",
        "  [!] 'B' rejected by w2: poison",
    ]


def test_on_a_terminal_waiting_shows_the_work_done_and_no_time_left(capsys, monkeypatch):
    """Nine tasks of four units: one done says 4/36 units, never a time left from a rate of tasks."""
    monkeypatch.setenv("LAB_TERMINAL", "1")  # what scripts/send.sh passes when its output is a terminal
    progress = display.WaitProgress(9, units=36)
    progress({"event": "started", "message_id": "b.2", "task": "B....", "worker": "w2", "started": 1.0}, 0)
    progress({"event": "done", "message_id": "b.1", "task": "A....", "worker": "w1", "started": 1.0}, 1)
    progress.close()
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().out)  # without the colours
    assert "1/9 done, 1 running, 4/36 units of work," in out
    assert "left" not in out and "/s" not in out
    assert "done: 'A....'" not in out


def test_on_a_terminal_the_work_done_counts_each_task_once_and_not_a_done_taken_back(capsys, monkeypatch):
    """As across a broker restart (demo-restart.sh): a task's "done" taken back by a "cut"
    (its acknowledgement was lost), then the task redelivered and done again."""
    monkeypatch.setenv("LAB_TERMINAL", "1")
    progress = display.WaitProgress(2, units=8)
    first = {"message_id": "b.1", "task": "A....", "worker": "w1", "started": 1.0}
    again = {**first, "worker": "w2", "started": 5.0}
    shown = []
    for event, done in (("started", 0), ("done", 1), ("cut", 0), ("started", 0), ("done", 1)):
        progress({"event": event, **(first if len(shown) < 3 else again)}, done)
        progress.progress.refresh()
        frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().out).split("\r")
        shown.append(frames[-1].split(" done, ", 1)[1].split(" units of work,")[0])
    progress.close()
    assert shown == ["1 running, 0/8", "0 running, 4/8", "0 running, 0/8", "1 running, 0/8", "0 running, 4/8"]


def test_control_characters_from_the_network_reach_the_terminal_escaped():
    hostile = "Task \x1b]0;pwned\x07\x1b[2J."
    records = [{"event": "done", "worker": "w\x1b[31m1", "task": hostile, "message_id": "b.1", "batch": "b",
                "redelivered": False, "started": 1.0, "finished": 2.0}]  # fmt: skip
    assert "\x1b" not in display.task_names(records) and "\\x1b]0;pwned\\x07" in display.task_names(records)
    shown = io.StringIO()
    display.console(shown).print(display.worker_table(records))  # done records are events too
    assert "\x1b" not in shown.getvalue() and "w\\x1b[31m1" in shown.getvalue()


def test_the_table_lists_the_first_task_names_of_a_long_batch():
    tasks = [{"task": f"Task {number}."} for number in range(1, 2001)]
    assert (
        display.task_names(tasks) == "Task 1, Task 2, Task 3, Task 4, Task 5, Task 6, Task 7, Task 8, … and 1,992 more"
    )


def test_a_cut_attempt_ends_where_its_worker_started_another_task():
    # consumer-1's task 1 is cut; consumer-1 starts task 2 at 102, before task 1's retry at 104.
    cut = [segment for segment in figures.segments(CUT_THEN_OWN_TASK) if segment.get("cut")]
    assert [(segment["started"], segment["finished"]) for segment in cut] == [(100, 102)]
    row = next(line for line in display.text_timeline(figures.segments(CUT_THEN_OWN_TASK), width=30).splitlines()
               if line.startswith("consumer-1"))  # fmt: skip
    assert re.search(r"\[~+1~+\]\[=+2=+\]", row), row  # its closing bracket is not drawn over


def test_an_attempt_cut_by_a_kill_ends_at_the_kill_the_demo_noted():
    killed = [{"at": 100.5, "label": "killed consumer-1"}]
    cut = [segment for segment in figures.segments(CRASH, killed) if segment.get("cut")]
    assert [(segment["worker"], segment["finished"]) for segment in cut] == [("consumer-1", 100.5)]
    elsewhere = [{"at": 100.5, "label": "killed consumer-3"}, {"at": 99.0, "label": "killed consumer-1"}]
    assert [s["finished"] for s in figures.segments(CRASH, elsewhere) if s.get("cut")] == [101.0]


def equal_tasks_at_prefetch_1():
    """Six one-second tasks on three workers at prefetch 1: each next task received as the last was acknowledged."""
    events = []
    for slot in range(2):
        for worker in range(1, 4):
            number, started = slot * 3 + worker, 100.0 + slot
            done = record(number, f"consumer-{worker}", started, started + 1.0)
            events.append(done | {"task": f"Task {number}.", "received": started, "prefetch": 1})
    return events


def test_the_wait_report_says_why_each_worker_got_its_tasks():
    # Equal tasks at prefetch 1: the table reads like round-robin, and the line says why it is not.
    fair_equal = display.dispatch_line(figures.done_records(equal_tasks_at_prefetch_1()))
    assert fair_equal == (
        "Why: every task went to a worker with nothing else in hand (prefetch 1: the broker gives a worker "
        "a new task only once it has acknowledged the last); with tasks of equal length that looks like taking turns."
    )
    skewed = [r | {"task": r["task"] + "." * round(r["finished"] - r["started"])} for r in FAIR]  # a dot a second
    skewed_line = display.dispatch_line(figures.done_records(skewed))
    assert skewed_line.startswith("Why: every task went to a worker with nothing else in hand (prefetch 1")
    assert "taking turns" not in skewed_line
    # Round-robin: consumer-1 and -2 each held 2 tasks behind another (1 s and 2 s), consumer-3 2 (6 s and 12 s).
    assert display.dispatch_line(figures.done_records(ROUND_ROBIN)) == (
        "Why: 6 of 9 tasks reached a worker still busy with another and waited in its buffer, 24.0 s in all "
        "(no prefetch limit: the broker dealt the tasks out in turn, busy or not)."
    )
    assert display.dispatch_line([record(1, "consumer-1", 100.0, 101.0)]) is None  # no receipt times: no claim


def test_print_run_shows_the_why_line_under_the_makespan(capsys):
    display.print_run({"workers": 3, "sent": 6, "events": equal_tasks_at_prefetch_1()})
    lines = capsys.readouterr().out.splitlines()
    makespan = next(i for i, line in enumerate(lines) if line.startswith("makespan "))
    assert lines[makespan + 1].startswith("Why: every task went to a worker with nothing else in hand")
