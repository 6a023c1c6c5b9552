"""scripts/history.sh's reader (labctl/history.py), without a broker: where a reader
starts, what it refuses, and each event as a line of text."""

import json
from datetime import datetime, timedelta

import pytest

from lab import schema
from labctl import history

NOW = datetime(2026, 12, 7, 10, 0).astimezone()
DONE = {
    "event": "done",
    "worker": "consumer-2",
    "task": "Task 3..",
    "message_id": "b1.3",
    "batch": "b1",  # fmt: skip
    "redelivered": False,
    "started": 1_796_000_000.0,
    "finished": 1_796_000_002.0,
    "at": 1_796_000_002.0,
}


@pytest.mark.parametrize(("text", "offset"), [
    ("first", "first"), ("last", "last"), ("next", "next"), ("0", 0), ("1234", 1234), ("10m", "10m"), ("1D", "1D"),
])  # fmt: skip
def test_from_takes_the_brokers_names_offsets_and_ages(text, offset):
    assert history.stream_offset(text, NOW) == offset


def test_from_takes_a_time_in_this_machines_zone_or_the_one_given():
    assert history.stream_offset("2026-12-07T09:30:00", NOW) == datetime(2026, 12, 7, 9, 30).astimezone()
    assert history.stream_offset("2026-12-07T09:30:00+00:00", NOW + timedelta(days=1)).utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["-1", "1.5", "soon", "10x", "0m", "", "first;", "\x1b[2J"])
def test_a_bad_from_is_one_line_naming_what_it_takes(text):
    with pytest.raises(ValueError, match=r"^--from takes first, last, next, an offset .* got '") as error:
        history.stream_offset(text, NOW)
    assert "\x1b" not in str(error.value)


def test_a_time_in_the_future_is_refused():
    with pytest.raises(ValueError, match="is in the future"):
        history.stream_offset("2026-12-07T11:00:00", NOW)


def test_a_forged_event_in_the_stream_is_still_refused_by_the_schema():
    forged = [DONE, {**DONE, "html": "<b>x</b>"}, {**DONE, "started": "soon"}, {"event": "gone", "worker": "w"}]
    kept, refused = schema.events_of(json.dumps(forged).encode())
    assert kept == [DONE] and refused == 3
    assert schema.events_of(b"[" * 100_000) == ([], 1)
    assert schema.events_of(b" " * (schema.MAX_BODY_BYTES + 1)) == ([], 1)
    assert schema.events_of(b'{"event": "done"}') == ([], 1)


def test_an_event_is_a_line_of_text_with_its_offset_who_what_and_which_task():
    text = history.line(412, DONE)
    assert text.startswith("     412  ")
    assert text.endswith("consumer-2    done      Task 3.. (b1.3), 2.0 s")
    hostile = {**DONE, "worker": "w\u202eevil", "task": "\x1b]0;pwned\x07Task"}
    shown = history.line(1, hostile)
    assert "\x1b" not in shown and "\u202e" not in shown and "\\u202e" in shown


def test_a_batch_is_found_by_its_name_from_the_streams_own_sending_events():
    wanted = history.BatchFilter("six")
    sending = {"event": "sending", "batch": "b1", "name": "six", "tasks": 6, "at": 1.0}
    assert wanted(sending) and wanted(DONE)
    assert not wanted({**DONE, "batch": "b2"})
    assert history.BatchFilter("b2")({**DONE, "batch": "b2"})
    assert history.BatchFilter(None)({**DONE, "batch": "b9"})
