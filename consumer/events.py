"""What happens to each task, told to whoever watches (the dashboard): the events of
lab/schema.py, as JSON lists on the fanout exchange `lab.events`. Tasks with no work
are only counted, a "quick" event per batch per tick: they come by the thousand.

Watching must never cost the worker its tasks: the events have a channel of their
own, publish without confirms, are dropped while the broker blocks publishing, and
an error on that channel drops them and the channel, never the session. Nobody bound
to the exchange: the broker drops them."""

import json
import time
from collections import Counter

import pika
from pika.exceptions import AMQPError

from lab.schema import TASK_TEXT_SHOWN, took_time
from lab.topology import EVENTS_EXCHANGE, declare_events_exchange

PROPERTIES = pika.BasicProperties(content_type="application/json")  # transient: only live watchers care


class Events:
    """One session's events; on the connection's thread only, as every pika call."""

    def __init__(self, connection, worker, prefetch):
        self.worker, self.channel, self.blocked, self.quick = worker, None, False, Counter()
        try:
            self.channel = connection.channel()
            declare_events_exchange(self.channel)
        except AMQPError:
            return  # no events this session; the tasks go on
        connection.add_on_connection_blocked_callback(lambda *_: setattr(self, "blocked", True))
        connection.add_on_connection_unblocked_callback(lambda *_: setattr(self, "blocked", False))
        self.publish({"event": "attached", "prefetch": prefetch})

    def tell(self, kind, record):
        """A task's event (received, started, done, cut, rejected)."""
        if kind == "done" and not took_time(record):
            self.quick[record["batch"]] += 1
        else:
            self.publish({**record, "event": kind, "task": record["task"][:TASK_TEXT_SHOWN]})

    def tick(self):
        """The tasks with no work done since the last tick, a count per batch."""
        quick, self.quick = self.quick, Counter()
        self.publish(*({"event": "quick", "batch": batch, "count": count} for batch, count in quick.items()))

    def leaving(self):
        self.tick()
        self.publish({"event": "leaving"})

    def publish(self, *events):
        if not events or self.channel is None or self.blocked:
            return
        body = json.dumps([{"worker": self.worker, "at": time.time(), **event} for event in events])
        try:
            self.channel.basic_publish(EVENTS_EXCHANGE, "", body, PROPERTIES)
        except AMQPError:
            self.channel = None  # closed under us: no more events this session
