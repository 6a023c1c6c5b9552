"""The events the dashboard accepts, checked at the door: anyone with the lab's login
can publish to lab.events, so nothing is kept or forwarded that is not an event of the
lab's schema (lab/schema.py: kinds, fields, types, sizes), and no message body can
crash the dashboard. What fails is dropped and counted (the page shows the count)."""

import json

from lab.schema import problem

MAX_BODY_BYTES = 1 << 20
MAX_EVENTS_PER_MESSAGE = 10_000


def read_message(body):
    """(the events of a lab.events message that pass, how many were dropped)."""
    if len(body) > MAX_BODY_BYTES:
        return [], 1
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deep nesting, e.g. 100,000 "["
        return [], 1
    if not isinstance(events, list):
        return [], 1
    kept = [event for event in events[:MAX_EVENTS_PER_MESSAGE] if problem(event, event=True) is None]
    return kept, len(events) - len(kept)
