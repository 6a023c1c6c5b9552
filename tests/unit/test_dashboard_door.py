"""Events checked at the dashboard's door (issue 17): anyone with the lab's login can
publish to lab.events, so every event is checked against the lab's schema before the hub
keeps or forwards it, and no message body can crash the dashboard."""

import json
from pathlib import Path

import pytest

import door
import serve

T = 1_700_000_000.0
TASK = {"worker": "consumer-1", "message_id": "b1.3", "batch": "b1", "task": "Task 3...", "redelivered": False,
        "started": T, "at": T}  # fmt: skip
GOOD = [
    {"event": "received", **TASK},
    {"event": "started", **TASK},
    {"event": "done", **TASK, "finished": T + 3},
    {"event": "cut", **TASK, "reason": "stopped before it was done"},
    {"event": "rejected", **TASK, "reason": "too many dots"},
    {"event": "quick", "worker": "consumer-1", "batch": "b1", "count": 150, "at": T},
    {"event": "attached", "worker": "consumer-1", "prefetch": 1, "at": T},
    {"event": "leaving", "worker": "consumer-1", "at": T},
    {"event": "done", **TASK, "message_id": None, "batch": None, "finished": T},  # a tutorial's task
]


def test_the_workers_events_pass_as_they_are():
    assert door.read_message(json.dumps(GOOD).encode(), T) == (GOOD, 0, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"event": "exploded"},
        {"event": ["done"]},  # unhashable: a lookup in a dict would raise
        {"worker": 42},
        {"worker": ""},
        {"worker": "w" * 256},
        {"worker": None},
        {"at": "yesterday"},
        {"at": float("nan")},
        {"at": True},
        {"at": -1},
        {"at": 1e12},
        {"started": None},
        {"redelivered": "yes"},
        {"message_id": 7},
        {"batch": ["b1"]},
        {"task": {"html": "<b>"}},
    ],
    ids=repr,
)
def test_an_event_with_a_field_of_the_wrong_type_or_size_is_dropped_and_counted(change):
    bad = {**GOOD[2], **change}
    assert door.read_message(json.dumps([GOOD[0], bad]).encode(), T) == ([GOOD[0]], 1, 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"event": "done", **TASK},  # no finished
        {"event": "quick", "worker": "consumer-1", "count": "<img src=x onerror=alert(1)>", "at": T},
        {"event": "quick", "worker": "consumer-1", "count": -1, "at": T},
        {"event": "attached", "worker": "consumer-1", "prefetch": -1, "at": T},
        {"event": "leaving", "worker": "consumer-1"},  # no time
        "done",
        None,
        [GOOD[0]],
    ],
    ids=repr,
)
def test_an_event_without_what_its_kind_needs_is_dropped(bad):
    assert door.read_message(json.dumps([bad]).encode(), T) == ([], 1, 0)


def test_an_event_with_fields_its_kind_does_not_have_or_a_long_text_is_dropped():
    extra = {**GOOD[2], "html": "<script>"}
    long_text = {**GOOD[2], "task": "x" * 61}  # the workers cut a task's text to 60 characters
    assert door.read_message(json.dumps([extra, long_text, GOOD[0]]).encode(), T) == ([GOOD[0]], 2, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # deep nesting: RecursionError in json.loads
        b'{"event": "done"}',
        b"not json",
        b"\xff\xfe",
        b"[" + b" " * door.MAX_BODY_BYTES + b"]",  # over the size bound: never parsed
        b"",
    ],
    ids=lambda body: repr(body[:20]),
)
def test_no_body_crashes_the_reader(body):
    assert door.read_message(body, T) == ([], 1, 0)


def test_a_message_of_too_many_events_keeps_the_first_and_counts_the_rest():
    events = [GOOD[5]] * (door.MAX_EVENTS_PER_MESSAGE + 5)
    kept, dropped, _late = door.read_message(json.dumps(events).encode(), T)
    assert len(kept) == door.MAX_EVENTS_PER_MESSAGE and dropped == 5


def test_gone_is_the_dashboards_own_word_and_refused_from_the_events_exchange():
    gone = {"event": "gone", "worker": "consumer-1", "at": T}
    assert door.read_message(json.dumps([gone, GOOD[0]]).encode(), T) == ([GOOD[0]], 1, 0)


@pytest.mark.parametrize(
    "change",
    [{"started": 1}, {"at": 1}, {"finished": T + 3600}, {"received": T - 2 * 24 * 3600}, {"at": 9e10}],
    ids=repr,
)
def test_an_event_with_a_time_far_from_when_it_arrived_is_dropped_and_counted_apart(change):
    far = {**GOOD[2], **change}
    assert door.read_message(json.dumps([far, GOOD[0]]).encode(), T) == ([GOOD[0]], 0, 1)


def test_an_hour_long_task_done_now_is_in_the_window():
    long_task = {**GOOD[2], "started": T - 3600, "received": T - 7200, "finished": T, "at": T}
    assert door.read_message(json.dumps([long_task]).encode(), T + 1) == ([long_task], 0, 0)


def test_read_from_the_stream_an_event_is_measured_from_when_the_read_started_not_when_it_arrived():
    """Stored a day and a half before it is read (the read started from two days back: a
    resumed read after an outage): in the window from the read's start; 1970 still is not."""
    stored = {**GOOD[2], "started": T - 36 * 3600, "finished": T - 36 * 3600 + 3, "at": T - 36 * 3600 + 3}
    body = json.dumps([stored, {**stored, "started": 1}]).encode()
    assert door.read_message(body, T) == ([], 0, 2)
    assert door.read_message(body, T, since=T - 48 * 3600) == ([stored], 0, 1)
    future = {**GOOD[2], "finished": T + 3600}
    assert door.read_message(json.dumps([future]).encode(), T, since=T - 3600) == ([], 0, 1)


@pytest.mark.parametrize("login", [("guest", "guest"), ("guest", "mine"), ("mine", "guest")])
def test_beyond_loopback_with_a_guest_login_the_dashboard_refuses_to_start_in_one_line(monkeypatch, capsys, login):
    monkeypatch.setattr(serve, "create_app", lambda: pytest.fail("started"))
    monkeypatch.setenv("LAB_BIND_ADDRESS", "0.0.0.0")
    monkeypatch.setenv("RABBITMQ_DEFAULT_USER", login[0])
    monkeypatch.setenv("RABBITMQ_DEFAULT_PASS", login[1])
    assert serve.main() == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("dashboard: refusing to start: LAB_BIND_ADDRESS=0.0.0.0 publishes the page beyond")
    assert "mine" not in err


def test_on_loopback_the_guest_login_starts(monkeypatch):
    started = []
    monkeypatch.setattr(serve, "create_app", lambda: "the app")
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **_: started.append(app))
    monkeypatch.setenv("LAB_BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("RABBITMQ_DEFAULT_USER", "guest")
    monkeypatch.setenv("RABBITMQ_DEFAULT_PASS", "guest")
    assert serve.main() == 0 and started == ["the app"]


def test_the_page_never_builds_html_from_strings():
    static = Path(door.__file__).parent / "static"
    for script in static.glob("*.js"):
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser"):
            assert sink not in script.read_text(), f"{script.name} uses {sink}: text nodes only"
