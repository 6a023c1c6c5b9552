"""Every place that shows a batch's figures shows the same ones (issue 31), for generated
histories: redeliveries, rejections, attempts cut short (handed back, a worker killed, a
"done" taken back), tasks with no work (done twice too), several workers, two batches at once.
The places: the terminal's table and makespan line, the saved run (timelines/NAME.json), the
run the dashboard serves a replay, and the figures the dashboard sends the live page."""

import io
import json
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

import display
import runs
from batches import Batches, read_run
from lab.figures import done_records, figures, moment
from lab.schema import TASK_TEXT_SHOWN, problem

OUTCOMES = ("done", "handed back", "killed", "rejected", "done, taken back")

attempt = st.tuples(
    st.integers(1, 5),  # the task's number
    st.integers(1, 4),  # its worker
    st.integers(0, 40).map(lambda n: 1000 + n / 4),  # when it started
    st.sampled_from([0, 0, 0.5, 1, 2.25, 4]),  # seconds of work
    st.sampled_from(OUTCOMES),
)


def records_of(batch, attempts):
    """The records lab workers send for these attempts (one attempt a task, worker and start)."""
    records, seen = [], set()
    for number, worker, started, seconds, outcome in attempts:
        base = {"worker": f"consumer-{worker}", "task": f"Task {number}" + "." * int(seconds), "batch": batch,
                "message_id": f"{batch}.{number}", "redelivered": number in seen, "started": started}  # fmt: skip
        seen.add(number)
        if outcome == "rejected":
            records.append({**base, "event": "rejected", "reason": "not valid UTF-8 text"})
            continue
        if seconds or outcome != "done":
            records.append({**base, "event": "started"})
        if outcome in ("done", "done, taken back"):
            records.append({**base, "event": "done", "finished": started + seconds})
        if outcome in ("handed back", "done, taken back"):
            records.append({**base, "event": "cut", "reason": "its delivery was lost"})
    return records


def unique_attempts(attempts):
    return list({(number, worker, started): (number, worker, started, s, o)
                 for number, worker, started, s, o in attempts}.values())  # fmt: skip


histories = st.tuples(st.lists(attempt, min_size=1, max_size=12), st.lists(attempt, max_size=6)).map(
    lambda both: (records_of("a", unique_attempts(both[0])), records_of("b", unique_attempts(both[1])))
)


def as_events(records):
    """The events the dashboard hears of these records, as a worker sends them: a task with
    no work only counted ("quick"), a killed worker's consumer "gone" soon after its last start."""
    events = []
    for record in records:
        if record["event"] == "done" and record["finished"] <= record["started"]:
            events.append({"event": "quick", "worker": record["worker"], "batch": record["batch"], "count": 1,
                           "at": record["finished"]})  # fmt: skip
        else:
            events.append({**record, "task": record["task"][:TASK_TEXT_SHOWN], "at": moment(record)})
    latest = max(moment(record) for record in records)
    for worker in {record["worker"] for record in records}:
        events.append({"event": "gone", "worker": worker, "at": latest + 0.01})
    return sorted(events, key=lambda event: event["at"])


def terminal(records):
    """The terminal's table and makespan line, as figures: {worker: (tasks, busy)}, makespan, bound."""
    console = Console(file=io.StringIO(), width=200)
    console.print(display.worker_table(records))
    rows = {line.split()[0]: (int(line.split()[1]), float(line.split()[2]))
            for line in console.file.getvalue().splitlines()[1:] if line.strip()}  # fmt: skip
    if not done_records(records):
        return rows, None, None
    line = display.makespan_line(records)
    makespan, bound = re.search(
        r"makespan ([\d.]+) s for \d+ tasks on \d+ workers?; lower bound ([\d.]+) s", line
    ).groups()
    return rows, float(makespan), float(bound)


def shown(found):
    """Figures as the terminal prints them (one decimal)."""
    rows = {worker: (row["tasks"], round(row["busy"], 1)) for worker, row in found["per_worker"].items()}
    rounded = lambda x: None if x is None else float(f"{x:.1f}")  # noqa: E731
    return rows, rounded(found["makespan"]), rounded(found["lower_bound"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories)
def test_every_place_shows_the_terminals_figures(tmp_path_factory, monkeypatch, history):
    timelines = tmp_path_factory.mktemp("timelines")
    first, second = history
    for records in (first, second):
        for record in records:
            assert problem(record, event=False) is None, record
    expected = figures(first)
    assert terminal(first) == shown(expected)

    # The saved run, the replay the dashboard serves, and the live page's figures once saved.
    monkeypatch.setattr(runs, "TIMELINES", timelines)
    monkeypatch.setattr(
        runs.chart, "save_png", lambda path, drawn: path.write_bytes(b"")
    )  # the PNG: test_chart.py; here, the figures
    runs.save_run("generated", {"name": "generated", "batch": "a", "workers": 4, "sent": 5, "events": first})
    saved = json.loads((timelines / "generated.json").read_text())
    assert saved["figures"] == json.loads(json.dumps(expected))
    assert read_run(timelines / "generated.json")["figures"] == saved["figures"]
    live = Batches(timelines)
    live.add([{"event": "sending", "batch": "a", "name": "generated", "tasks": 5, "at": 999.0}])
    live.add(as_events(first + second))
    assert live.view(live.batches["a"], now=2000.0)["figures"] == saved["figures"]


@settings(max_examples=100, deadline=None)
@given(histories)
def test_the_live_figures_before_the_run_is_saved_are_the_terminals(history):
    first, second = history
    events = as_events(first + second)
    for event in events:
        assert problem(event, event=True) is None or event["event"] == "gone", event
    # Live, a task with no work is only counted ("quick" names no task): done twice, rejected or
    # taken back too, the live count cannot know it; the saved run's figures then correct it (above).
    no_work = {r["message_id"] for r in first if r["event"] == "done" and r["finished"] <= r["started"]}
    assume(sum(r["message_id"] in no_work for r in first) == len(no_work))
    live = Batches()
    live.add(events)
    view = live.view(live.batches["a"], now=2000.0)["figures"]
    final = figures(first)
    assert view["over"] is True
    assert shown(view) == shown(final)
    assert (view["tasks"], view["rejected"], view["workers"]) == (final["tasks"], final["rejected"], final["workers"])
