"""consumer/events.py: what a worker tells the dashboard, and that telling never costs it a task."""

import json

import pytest
from pika.exceptions import ChannelClosedByBroker, ChannelWrongStateError, ConnectionWrongStateError

from events import Events
from lab.schema import TASK_TEXT_SHOWN
from lab.topology import EVENTS_EXCHANGE as EXCHANGE


class FakeChannel:
    def __init__(self, fail=None):
        self.published, self.fail = [], fail

    def exchange_declare(self, name, kind, durable):
        self.declared = (name, kind, durable)

    def basic_publish(self, exchange, routing_key, body, properties):
        if self.fail:
            raise self.fail
        self.published.append((exchange, json.loads(body)))


class FakeConnection:
    def __init__(self, channel):
        self._channel, self.callbacks, self.blocked_callbacks = channel, [], []

    def channel(self):
        return self._channel

    def add_callback_threadsafe(self, callback):
        self.callbacks.append(callback)

    def add_on_connection_blocked_callback(self, callback):
        self.blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(self, callback):
        self.unblocked = callback


def record(number, started=100.0, finished=None):
    task = {"worker": "consumer-1", "task": f"Task {number}..", "message_id": f"b1.{number}", "batch": "b1",
            "redelivered": False, "started": started}  # fmt: skip
    return {**task, "finished": finished} if finished else task


@pytest.fixture
def opened():
    channel = FakeChannel()
    connection = FakeConnection(channel)
    return Events(connection, "consumer-1", prefetch=1), channel, connection


def test_attaching_declares_the_exchange_and_says_so_at_once(opened):
    _events, channel, _connection = opened
    assert channel.declared == (EXCHANGE, "fanout", True)
    [(exchange, [event])] = channel.published
    assert exchange == EXCHANGE
    assert event["event"] == "attached" and event["worker"] == "consumer-1" and event["prefetch"] == 1


def test_a_task_event_goes_at_once_with_who_and_when(opened):
    events, channel, _connection = opened
    events.tell("received", record(1))
    events.tell("done", record(1, finished=101.0))
    assert [(e["event"], e["message_id"], e["worker"]) for _x, [e] in channel.published[1:]] == [
        ("received", "b1.1", "consumer-1"), ("done", "b1.1", "consumer-1")
    ]  # fmt: skip
    assert all(isinstance(e["at"], float) for _x, [e] in channel.published)


def test_tasks_with_no_work_are_counted_per_batch_not_sent_one_by_one(opened):
    events, channel, _connection = opened
    for number in range(1, 1001):
        events.tell("done", record(number, finished=100.0))
    assert len(channel.published) == 1  # only "attached": the worker's tick sends counts
    events.tick()
    _exchange, [count] = channel.published[-1]
    assert (count["event"], count["batch"], count["count"]) == ("quick", "b1", 1000)
    events.tick()
    assert len(channel.published) == 2  # nothing counted since: nothing sent


def test_rejected_and_cut_tasks_are_told_with_their_text_shortened(opened):
    events, channel, _connection = opened
    events.tell("rejected", {**record(1), "task": "x" * 200, "reason": "too long"})
    events.tell("cut", {**record(2), "reason": "stopped before it was done"})
    (_x, [rejected]), (_y, [cut]) = channel.published[-2:]
    assert rejected["event"] == "rejected" and len(rejected["task"]) == TASK_TEXT_SHOWN
    assert cut["event"] == "cut" and cut["reason"] == "stopped before it was done"


def test_nothing_is_published_while_the_broker_blocks_publishing(opened):
    events, channel, connection = opened
    connection.blocked_callbacks[0](connection, None)
    events.tell("received", record(1))
    assert len(channel.published) == 1  # only "attached", from before the block
    connection.unblocked(connection, None)
    events.tell("received", record(2))
    assert channel.published[-1][1][0]["message_id"] == "b1.2"  # the blocked one was dropped, not queued


@pytest.mark.parametrize("error", [ChannelClosedByBroker(404, "NOT_FOUND - no exchange"), ChannelWrongStateError()])
def test_an_error_on_the_events_channel_drops_the_events_never_raises(opened, error):
    events, channel, _connection = opened
    channel.fail = error
    events.tell("received", record(1))  # no exception: the worker's session goes on
    channel.fail = None
    events.tell("received", record(2))
    events.leaving()
    assert len(channel.published) == 1  # the channel is given up for the session


def test_an_events_channel_that_cannot_open_leaves_the_worker_without_events():
    class NoChannel(FakeConnection):
        def channel(self):
            raise ConnectionWrongStateError("called on closed or closing connection")

    events = Events(NoChannel(FakeChannel()), "consumer-1", prefetch=1)
    events.tell("received", record(1))  # must not raise
    events.leaving()
