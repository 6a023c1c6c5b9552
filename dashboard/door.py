"""The events the dashboard accepts, checked at the door: anyone with the lab's login
can publish to lab.events, so nothing is kept or forwarded that is not an event of the
lab's schema (lab/schema.py: kinds, fields, types, sizes), and no message body can
crash the dashboard. What fails is dropped and counted (the page shows the count).

Times are untrusted too: an event whose times fall outside a window around the moment
it arrived (a day before, a minute after: a long batch's tasks start long before they
are done, and clocks differ a little) is dropped and counted apart. Read from the stream
lab.history, an event may have been stored long before it is read (a page opened after a
batch, a dashboard restarted in the middle of one), and a stream message carries no time
the broker gave it (over AMQP 0.9.1 only its offset): the past bound is then measured from
the earliest moment a message of that read can have been stored, the time the read started
from (`since`), the future bound still from arrival. Never narrower than the true window,
so no event the lab made is refused; still a bound (an event "started" in 1970 is). "gone" is the
dashboard's own word (from the broker's consumer events): from lab.events it is refused."""

import json

from lab.schema import problem

MAX_BODY_BYTES = 1 << 20
MAX_EVENTS_PER_MESSAGE = 10_000
PAST_SECONDS = 24 * 3600
FUTURE_SECONDS = 60
TIMES = ("at", "started", "finished", "received")
NOT_FROM_WORKERS = ("gone",)


def in_window(event, now, since=None):
    earliest = min(now, since) if since is not None else now
    return all(earliest - PAST_SECONDS <= event[name] <= now + FUTURE_SECONDS for name in TIMES if name in event)


def read_message(body, now, since=None):
    """(the events of a lab.events message that pass, how many were malformed, how many
    had times out of the window around `now`, or from `since` to `now` for a message stored
    at some moment between them)."""
    if len(body) > MAX_BODY_BYTES:
        return [], 1, 0
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deep nesting, e.g. 100,000 "["
        return [], 1, 0
    if not isinstance(events, list):
        return [], 1, 0
    valid = [
        event for event in events[:MAX_EVENTS_PER_MESSAGE]
        if problem(event, event=True) is None and event["event"] not in NOT_FROM_WORKERS
    ]  # fmt: skip
    kept = [event for event in valid if in_window(event, now, since)]
    return kept, len(events) - len(valid), len(valid) - len(kept)
