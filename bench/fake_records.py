"""Fakes of the pika connections records.EventListener opens: each delivers its
messages of records, then nothing more (as pika's inactivity timeout does) or
an error (a lost connection). For the unit tests and bench/bench.py; the unit
tests wrap other fake channels in FakeConnection too.
"""

import json
from types import SimpleNamespace


class RecordsChannel:
    def __init__(self, messages=(), then=None, broker_events=()):
        self.bodies = [json.dumps(records).encode() for records in messages]
        self.broker_events = list(broker_events)  # (routing key, headers) on amq.rabbitmq.event
        self.then = then
        self.acked = []

    def queue_declare(self, queue, **_settings):
        return SimpleNamespace(method=SimpleNamespace(queue=queue or "amq.gen-broker-events"))

    def queue_bind(self, queue, exchange, routing_key):
        pass

    def basic_get(self, queue, auto_ack):
        if self.broker_events:
            routing_key, headers = self.broker_events.pop(0)
            return SimpleNamespace(routing_key=routing_key), SimpleNamespace(headers=headers), b""
        return None, None, None

    def consume(self, queue, inactivity_timeout):
        for tag, body in enumerate(self.bodies, start=1):
            yield SimpleNamespace(delivery_tag=tag), None, body
        if self.then:
            raise self.then
        while True:
            yield None, None, None

    def basic_ack(self, tag):
        self.acked.append(tag)

    def cancel(self):
        pass

    def queue_delete(self, queue):
        pass


class FakeConnection:
    """A connection whose only channel is `channel` (any fake channel)."""

    def __init__(self, channel):
        self._channel = channel

    def channel(self):
        return self._channel

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return None


def connections(*channels):
    """A stand-in for records.open_first: the listener's first connection
    (declaring its queue), then one for each of `channels` in turn."""
    opened = iter([FakeConnection(RecordsChannel()), *map(FakeConnection, channels)])
    return lambda _parameters: next(opened)
