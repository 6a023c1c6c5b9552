"""The events the dashboard accepts, checked at the door: anyone with the lab's
login can publish to lab.events, so nothing unchecked is kept or forwarded.

A message is a JSON list of events (consumer/events.py writes them), each an
object with "event" (its kind), "worker" (a name) and "at" (seconds since the
epoch), and by kind:

- received, started, done, cut, rejected (a task's attempt): "started", and
  "finished" for done; optionally "message_id" and "batch" (names or null:
  clients other than the lab's send neither), "task" and "reason" (text, cut
  to TASK_CHARS and REASON_CHARS), "redelivered" (true/false);
- quick (tasks with no work, counted): "count", and "batch";
- attached: optionally "prefetch"; leaving and gone: nothing more.

Fields a kind does not have are left out; an event with a field of the wrong
type or size, or without one its kind needs, is dropped and counted.
"""

import json
import math

NAME_CHARS = 200
TASK_CHARS = 1024
REASON_CHARS = 300
MAX_BODY_BYTES = 1 << 20
MAX_EVENTS_PER_MESSAGE = 10_000
LATEST_TIME = 1e11  # seconds since the epoch: year 5138


def is_time(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and \
        0 <= value < LATEST_TIME  # fmt: skip


def is_name(value):
    return isinstance(value, str) and 0 < len(value) <= NAME_CHARS


def counted(low, high):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_text(value):
    return isinstance(value, str)


FIELDS = {
    "worker": is_name,
    "at": is_time,
    "started": is_time,
    "finished": is_time,
    "message_id": lambda value: value is None or is_name(value),
    "batch": lambda value: value is None or is_name(value),
    "redelivered": lambda value: isinstance(value, bool),
    "task": is_text,
    "reason": is_text,
    "count": counted(1, 10**9),
    "prefetch": counted(0, 65_535),
}
SHORTENED = {"task": TASK_CHARS, "reason": REASON_CHARS}  # longer texts are cut, an ellipsis says so
ATTEMPT = ("message_id", "batch", "task", "reason", "redelivered", "finished")
# kind -> (fields it needs besides event, worker and at; fields it may have)
KINDS = {
    "received": (("started",), ATTEMPT),
    "started": (("started",), ATTEMPT),
    "done": (("started", "finished"), ATTEMPT),
    "cut": (("started",), ATTEMPT),
    "rejected": (("started",), ATTEMPT),
    "quick": (("count",), ("batch",)),
    "attached": ((), ("prefetch",)),
    "leaving": ((), ()),
    "gone": ((), ()),
}


def checked(event):
    """The event with only its kind's fields, texts shortened; None if it is not one."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or event["event"] not in KINDS:
        return None
    needed, optional = KINDS[event["event"]]
    needed = ("worker", "at", *needed)
    if any(name not in event for name in needed):
        return None
    kept = {"event": event["event"]}
    for name in dict.fromkeys((*needed, *optional)):
        if name not in event:
            continue
        value = event[name]
        if not FIELDS[name](value):
            return None
        most = SHORTENED.get(name)
        kept[name] = value if most is None or len(value) <= most else value[: most - 1] + "…"
    return kept


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
    kept = [event for event in map(checked, events[:MAX_EVENTS_PER_MESSAGE]) if event is not None]
    return kept, len(events) - len(kept)
