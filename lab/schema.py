"""The records and events the workers send, in one place.

A *record* tells `send.sh --wait` what happened to one attempt at a task. A
worker publishes records (a JSON list per message) to the queue a task names in
its reply_to property:

    started   the worker began the task's work
    done      the work is done and the task acknowledged ("finished" set)
    rejected  the task cannot be done (poison): dead-lettered ("reason" set)
    cut       the attempt ended without an acknowledgement: a worker stopped
              or the broker took the task back ("reason" set); a cut record
              also takes back a "done" of the same attempt

Every record has: worker (its name, e.g. "consumer-2"), task (the task's text),
message_id ("<batch>.<n>", the n-th task of a batch; null for a client that
sets none), batch (the batch id, the message's correlation_id; null likewise),
redelivered (the broker had delivered it before), started (epoch seconds).
An attempt is (message_id, worker, started). A lab worker adds prefetch (its
limit, 0 = none) to every record, and received (when the task reached it, to
wait in its buffer) to those of a task with work; other clients may not.

An *event* is what the dashboard hears on the exchange lab.events: each record
as an event of the same kind, with "at" (when, epoch seconds) and the task's
text cut to TASK_TEXT_SHOWN characters; and

    received  a task with work waiting in the worker's prefetch buffer
    quick     "count" tasks of a batch done with no work (they come by the thousand)
    attached  the worker began consuming ("prefetch": its limit, 0 = none)
    leaving   the worker stopped consuming
    gone      the broker lost the worker's consumer without a word (the
              dashboard makes this one from the broker's own events)

The broker's own word on task_queue's consumers (attached, gone: consumer_event) is an
event too, with "broker": true; the stream lab.consumers keeps it.

and one event from the producer, without a worker:

    sending   send.sh is about to send "tasks" tasks of "batch", saved with
              --wait as the run "name" (null without --wait)

and one event from the autoscaler (scripts/autoscale.sh), without a worker, at each poll:

    scaled    task_queue read "ready" / "unacked"; the queue asked for "recommended"
              workers; the pool went from "before" to "workers" (the same: kept), and "why"
"""

import json
import math

from lab.topology import QUEUE, header_text

TASK_RECORDS = ("started", "done", "rejected", "cut")
TASK_EVENTS = ("received", *TASK_RECORDS)
WORKER_EVENTS = ("quick", "attached", "leaving", "gone")
PRODUCER_EVENTS = ("sending",)
SCALER_EVENTS = ("scaled",)
EVENTS = TASK_EVENTS + WORKER_EVENTS + PRODUCER_EVENTS + SCALER_EVENTS
TASK_TEXT_SHOWN = 60  # characters of a task's text an event carries: a task may be 131,072
# The most dots a task may ask for unless MAX_DOTS_PER_TASK says otherwise (send.sh
# refuses more, a worker rejects more).
DEFAULT_MAX_DOTS_PER_TASK = 3600
MAX_NAME = 255  # characters of a worker's name, a batch id, a message id, a reason


def message_id(batch, number):
    return f"{batch}.{number}"


def task_number(message):
    """ "<batch>.<n>" -> "n" """
    return str(message or "").rsplit(".", 1)[-1]


def took_time(record):
    return record.get("finished", record["started"]) > record["started"]


def _text(limit):
    return lambda value: isinstance(value, str) and len(value) <= limit


def _name(value):
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def _name_or_null(value):
    return value is None or _name(value)


def _time(value):
    """Seconds since the epoch, before the year 5138 (a page draws a time axis to it)."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1e11
    )


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _prefetch(value):
    return _count(value) and value <= 65_535


_TASK = {
    "worker": _name,
    "task": _text(131_072),
    "message_id": _name_or_null,
    "batch": _name_or_null,
    "redelivered": lambda value: isinstance(value, bool),
    "started": _time,
}
_LAB_WORKER = {"received": _time, "prefetch": _prefetch}  # what a lab worker adds to a task's records
_FIELDS = {  # kind -> (required fields and their checks, optional ones)
    "started": (_TASK, _LAB_WORKER),
    "done": ({**_TASK, "finished": _time}, _LAB_WORKER),
    "rejected": ({**_TASK, "reason": _text(MAX_NAME * 4)}, _LAB_WORKER),
    "cut": ({**_TASK, "reason": _text(MAX_NAME * 4)}, {**_LAB_WORKER, "finished": _time}),
    "received": (_TASK, _LAB_WORKER),
    "quick": ({"worker": _name, "batch": _name_or_null, "count": _count}, {}),
    "attached": ({"worker": _name, "prefetch": _prefetch}, {}),
    "leaving": ({"worker": _name}, {}),
    "gone": ({"worker": _name}, {}),
    "sending": ({"batch": _name, "name": _name_or_null, "tasks": _count}, {}),
    "scaled": (
        {name: _count for name in ("ready", "unacked", "recommended", "before", "workers")}
        | {"why": _text(MAX_NAME * 4)},
        {},
    ),
}


def problem(item, *, event):
    """What is wrong with a record (event=False) or an event (event=True), or None."""
    return next(_problems(item, event), None)


def _problems(item, event):
    if not isinstance(item, dict):
        yield f"not an object: {type(item).__name__}"
        return
    kind = item.get("event")
    if not isinstance(kind, str) or kind not in (EVENTS if event else TASK_RECORDS):
        yield f"unknown kind {str(kind)[:40]!r}"
        return
    required, optional = _FIELDS[kind]
    if event:
        required = {**required, "at": _time} | ({"task": _text(TASK_TEXT_SHOWN)} if kind in TASK_EVENTS else {})
    for name, valid in required.items():
        if name not in item or not valid(item[name]):
            yield f"{kind}: {'bad' if name in item else 'no'} {name}"
    for name, valid in optional.items():
        if name in item and not valid(item[name]):
            yield f"{kind}: bad {name}"
    for name in sorted(set(item) - set(required) - set(optional) - {"event"}):
        yield f"{kind}: unknown field {name[:40]!r}"


MAX_BODY_BYTES = 1 << 20  # a message on lab.events: a worker's group of events is far smaller


def events_of(body):
    """(the events of one lab.events message, or stream message, that pass the schema, how
    many did not): anyone with the lab's login can publish there, so nothing else is kept."""
    try:
        events = json.loads(body) if len(body) <= MAX_BODY_BYTES else None
    except (ValueError, RecursionError):  # RecursionError: deep nesting, e.g. 100,000 "["
        events = None
    if not isinstance(events, list):
        return [], 1
    kept = [event for event in events if problem(event, event=True) is None]
    return kept, len(events) - len(kept)


CONSUMER_EVENTS = {"consumer.created": "attached", "consumer.deleted": "gone"}


def consumer_event(routing_key, headers, now):
    """A consumer of task_queue attached or gone, from a message of amq.rabbitmq.event (the
    broker's own, which no client can publish to), as an event; None for anything else."""

    def text(name):
        return header_text(headers.get(name))

    kind, tag = CONSUMER_EVENTS.get(routing_key), text("consumer_tag")
    if kind is None or text("vhost") != "/" or text("queue") != QUEUE or not isinstance(tag, str) or not tag:
        return None
    stamp = headers.get("timestamp_in_ms")
    at = stamp / 1000 if isinstance(stamp, int) and not isinstance(stamp, bool) else now
    return {"event": kind, "worker": tag[:MAX_NAME], "at": at, "broker": True}  # the broker's word: not forged
