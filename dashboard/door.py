"""The events the dashboard accepts, checked at the door: anyone with the lab's login
can publish to lab.events, so nothing is kept or forwarded that is not an event of the
lab's schema (lab/schema.py: kinds, fields, types, sizes), and no message body can
crash the dashboard. What fails is dropped and counted (the page shows the count).

Times are untrusted too: an event whose times fall outside a window around the moment
it arrived (a day before, a minute after: a long batch's tasks start long before they
are done, and clocks differ a little) is dropped and counted apart. "gone" is the
dashboard's own word (from the broker's consumer events): from lab.events it is refused."""

import json

from lab.schema import problem

MAX_BODY_BYTES = 1 << 20
MAX_EVENTS_PER_MESSAGE = 10_000
PAST_SECONDS = 24 * 3600
FUTURE_SECONDS = 60
TIMES = ("at", "started", "finished", "received")
NOT_FROM_WORKERS = ("gone",)


def in_window(event, now):
    return all(now - PAST_SECONDS <= event[name] <= now + FUTURE_SECONDS for name in TIMES if name in event)


def read_message(body, now):
    """(the events of a lab.events message that pass, how many were malformed, how many
    had times out of the window around `now`)."""
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
    kept = [event for event in valid if in_window(event, now)]
    return kept, len(events) - len(valid), len(valid) - len(kept)
