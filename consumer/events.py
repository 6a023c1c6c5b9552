"""What happens to each task, told to whoever watches (the dashboard).

A worker publishes JSON lists of events to the fanout exchange `lab.events`:
a task received (waiting in the worker's prefetch buffer), started, done (only
once its acknowledgement went through settlement.py), cut short, rejected;
and the worker attaching and leaving. The events of a group of deliveries go
in one message, and tasks with no work are only counted, a count per batch
per tick: they come by the thousand.

Watching must never cost the worker its tasks: the events have a channel of
their own, publish without confirms, are dropped while the broker blocks
publishing, and any error on that channel drops them and the channel, never
the session. Nobody bound to the exchange: the broker drops them.
"""

import json
import threading
import time

import pika
from pika.exceptions import AMQPError

from lab.schema import TASK_TEXT_SHOWN, took_time
from lab.topology import EVENTS_EXCHANGE, declare_events_exchange

PROPERTIES = pika.BasicProperties(content_type="application/json")  # transient: only live watchers care


class Events:
    """One worker's events, buffered from any thread and published on the connection's thread."""

    def __init__(self, worker):
        self.worker = worker
        self.lock = threading.Lock()
        self.pending = []
        self.quick = {}  # batch -> tasks with no work done since the last flush
        self.connection = self.channel = None
        self.blocked = False

    def open(self, connection, prefetch):
        """At the start of a session, on the connection's thread."""
        self.connection, self.channel, self.blocked = None, None, False
        try:
            channel = connection.channel()
            declare_events_exchange(channel)
        except AMQPError:
            return  # no events this session (the worker's tick drops them); the tasks go on
        self.channel = channel
        connection.add_on_connection_blocked_callback(lambda *_: setattr(self, "blocked", True))
        connection.add_on_connection_unblocked_callback(lambda *_: setattr(self, "blocked", False))
        self.add({"event": "attached", "prefetch": prefetch})
        self.flush()
        self.connection = connection  # from now on the first event of a group asks for a flush

    def received(self, record):
        """A task with work delivered: from now it waits in the worker's buffer."""
        self.add(task_event("received", record))

    def settled(self, records):
        """The records of a group that settlement.py committed and settled."""
        for record in records:
            if record["event"] == "done" and not took_time(record):
                with self.lock:
                    self.quick[record["batch"]] = self.quick.get(record["batch"], 0) + 1
            else:
                self.add(task_event(record["event"], record))

    def leaving(self):
        """At the end of a session, on the connection's thread, before it closes."""
        self.add({"event": "leaving"})
        self.flush()

    def add(self, event):
        """From any thread; the first event since the last flush has the connection's thread flush soon."""
        event = {"worker": self.worker, "at": time.time(), **event}
        with self.lock:
            self.pending.append(event)
            first = len(self.pending) == 1
        if first and self.connection is not None:
            try:
                self.connection.add_callback_threadsafe(self.flush)
            except AMQPError:
                pass  # the connection is closing: leaving() or the next session flushes them

    def flush(self):
        """On the connection's thread: everything pending in one message, or nothing."""
        with self.lock:
            events, self.pending = self.pending, []
            quick, self.quick = self.quick, {}
        now = time.time()
        events += [{"event": "quick", "worker": self.worker, "batch": batch, "count": count, "at": now}
                   for batch, count in quick.items()]  # fmt: skip
        if not events or self.channel is None or self.blocked:
            return
        try:
            self.channel.basic_publish(EVENTS_EXCHANGE, "", json.dumps(events), PROPERTIES)
        except AMQPError:
            self.channel = None  # closed under us: no more events this session


def task_event(kind, record, **extra):
    """The event of a task's record, its text shortened."""
    return {**record, "event": kind, "task": record["task"][:TASK_TEXT_SHOWN], **extra}
