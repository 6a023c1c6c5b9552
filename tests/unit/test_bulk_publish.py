"""The pipelined publisher's bookkeeping, driven by a fake channel (no broker needed)."""

from types import SimpleNamespace

import pytest
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
)
from pika.exceptions import AMQPConnectionError, ProbableAuthenticationError, StreamLostError
from pika.spec import Basic

import bulk_publish as publisher_module
import connection as producer_connection
from bulk_publish import Publisher, SendFailed, StopRequested
from connection import ConnectionLost
from lab.brokers import short_error


class FakeChannel:
    """Records what is published; confirms come from the test."""

    def __init__(self):
        self.published = []
        ioloop = SimpleNamespace(stop=lambda: None, call_later=lambda _delay, _callback: None)
        self.connection = SimpleNamespace(is_open=True, close=lambda: None, ioloop=ioloop)

    def add_on_close_callback(self, _callback):
        pass

    def confirm_delivery(self, _on_confirm, callback):
        callback(None)

    def basic_publish(self, _exchange, _routing_key, body, _properties):
        self.published.append(body)


def ack(publisher, tag, multiple=False):
    publisher.on_confirm(SimpleNamespace(method=Basic.Ack(delivery_tag=tag, multiple=multiple)))


def messages(count):
    return [("task_queue", f"m{n}".encode(), None) for n in range(1, count + 1)]


def test_at_most_a_window_of_messages_is_unconfirmed():
    confirmed = []
    publisher = Publisher(None, messages(5), confirmed.append, window=2)
    channel = FakeChannel()
    publisher.on_channel_open(channel)
    assert channel.published == [b"m1", b"m2"]
    ack(publisher, 2, multiple=True)  # one ack for both
    assert channel.published == [b"m1", b"m2", b"m3", b"m4"]
    ack(publisher, 3)
    ack(publisher, 4)
    ack(publisher, 5)
    assert [body for _key, body, _props in confirmed] == [b"m1", b"m2", b"m3", b"m4", b"m5"]
    assert publisher.finished


def test_the_unconfirmed_are_sent_first_and_in_order_on_the_next_connection():
    publisher = Publisher(None, messages(5), lambda _message: None, window=3)
    first = FakeChannel()
    publisher.on_channel_open(first)
    ack(publisher, 1)  # m1 confirmed; m2, m3, m4 out
    publisher.on_connection_closed(first.connection, "broker restart")
    assert isinstance(publisher.failure, ConnectionLost) and publisher.resent == 3
    second = FakeChannel()
    publisher.on_channel_open(second)  # delivery tags start again at 1
    assert second.published == [b"m2", b"m3", b"m4"]
    ack(publisher, 3, multiple=True)
    assert second.published[-1] == b"m5"
    ack(publisher, 4)
    assert publisher.finished


def test_a_failed_open_is_a_connection_error_worth_retrying():
    # What SelectConnection reported when a restarting broker dropped the handshake.
    dropped = AMQPConnectorAMQPHandshakeError(StreamLostError("Stream connection lost"))
    refused = AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))
    timed_out = AMQPConnectorStackTimeout("Timeout during AMQP handshake")
    for error, inner in [
        (dropped, "StreamLostError"),
        (refused, "ConnectionRefusedError"),
        (timed_out, "AMQPConnectorStackTimeout"),
    ]:
        publisher = Publisher(None, messages(1), lambda _message: None)
        publisher.on_open_error(FakeChannel().connection, AMQPConnectionWorkflowFailed([error]))
        assert isinstance(publisher.failure, AMQPConnectionError)
        assert short_error(publisher.failure).startswith(inner)
    wrong_login = ProbableAuthenticationError("ACCESS_REFUSED")
    publisher.on_open_error(FakeChannel().connection, wrong_login)
    assert publisher.failure is wrong_login


class FakeConnection:
    """Stands in for pika.SelectConnection: its ioloop opens a FakeChannel and confirms
    what is published, one message at a time. As pika does, it takes an exception
    raised in a callback for a lost stream."""

    def __init__(self, _parameters, on_open_callback, on_open_error_callback, on_close_callback):
        self.on_open, self.on_open_error, self.on_close = on_open_callback, on_open_error_callback, on_close_callback
        self.is_open = True
        self.timers = []
        self.ioloop = SimpleNamespace(start=self.run, stop=lambda: None, call_later=self.call_later)

    def call_later(self, _delay, callback):
        self.timers.append(callback)

    def run_timers(self):
        timers, self.timers = self.timers, []
        for callback in timers:
            callback()

    def add_on_connection_blocked_callback(self, callback):
        self.on_blocked = callback

    def add_on_connection_unblocked_callback(self, callback):
        self.on_unblocked = callback

    def channel(self, on_open_callback):
        self.fake = FakeChannel()
        self.fake.connection = self
        self.fake.confirm_delivery = lambda on_confirm, callback: (
            setattr(self, "on_confirm", on_confirm),
            callback(None),
        )
        on_open_callback(self.fake)

    def run(self):
        confirmed = 0
        try:
            self.on_open(self)
            while self.is_open and confirmed < len(self.fake.published):
                confirmed += 1
                self.on_confirm(SimpleNamespace(method=Basic.Ack(delivery_tag=confirmed, multiple=False)))
                self.run_timers()
        except Exception as exc:  # noqa: BLE001 (what pika does)
            self.is_open = False
            self.on_close(self, StreamLostError(f"Stream connection lost: {exc!r}"))

    def close(self):
        if self.is_open:
            self.is_open = False
            self.on_close(self, "closed by the client")


def test_every_message_confirmed_is_counted(monkeypatch):
    monkeypatch.setattr(publisher_module.pika, "SelectConnection", FakeConnection)
    publisher = Publisher(None, messages(5), lambda _message: None, window=2)
    assert publisher.run() == 0
    assert publisher.confirmed == publisher.taken == 5


def test_a_message_that_cannot_be_made_ends_the_send_with_the_number_confirmed(monkeypatch):
    monkeypatch.setattr(publisher_module.pika, "SelectConnection", FakeConnection)

    def made_then_failing():
        yield from messages(3)
        "caf\udce9".encode("utf-8")  # a row that is not text: what new_task.messages() raised

    confirmed = []
    publisher = Publisher(None, made_then_failing(), confirmed.append, window=2)
    with pytest.raises(SendFailed, match="making message 4 failed: UnicodeEncodeError") as failed:
        publisher.run()
    assert failed.value.confirmed == 3 == len(confirmed)  # the messages already out were confirmed first


def test_a_broker_gone_for_longer_than_the_retries_ends_the_send_with_the_number_confirmed(monkeypatch):
    opened = []

    class GoneAfterThreeConfirms(FakeConnection):
        def run(self):
            if opened:
                self.on_open_error(self, AMQPConnectionError("Connection refused"))
                return
            opened.append(self)
            self.on_open(self)
            for tag in (1, 2, 3):
                self.on_confirm(SimpleNamespace(method=Basic.Ack(delivery_tag=tag, multiple=False)))
            self.is_open = False
            self.on_close(self, StreamLostError("Stream connection lost"))

    monkeypatch.setattr(publisher_module.pika, "SelectConnection", GoneAfterThreeConfirms)
    monkeypatch.setattr(producer_connection, "RECONNECT_FOR_SECONDS", 0)  # one attempt to reconnect
    publisher = Publisher(None, messages(10), lambda _message: None, window=5)
    with pytest.raises(SendFailed, match="Connection refused") as failed:
        publisher.run()
    assert failed.value.confirmed == publisher.confirmed == 3


def test_a_cluster_node_down_at_the_start_or_lost_midway_is_replaced_by_the_next(monkeypatch):
    hosts = []

    class NodeOneDownNodeTwoLostAfterThreeConfirms(FakeConnection):
        def __init__(self, parameters, **callbacks):
            super().__init__(parameters, **callbacks)
            hosts.append(parameters)

        def run(self):
            if hosts[-1] == "node-1":
                self.on_open_error(self, AMQPConnectionError("Name or service not known"))
            elif hosts[-1] == "node-2":
                self.on_open(self)
                for tag in (1, 2, 3):
                    self.on_confirm(SimpleNamespace(method=Basic.Ack(delivery_tag=tag, multiple=False)))
                self.is_open = False
                self.on_close(self, StreamLostError("Stream connection lost"))
            else:
                super().run()

    monkeypatch.setattr(publisher_module.pika, "SelectConnection", NodeOneDownNodeTwoLostAfterThreeConfirms)
    monkeypatch.setattr(producer_connection.tenacity.nap, "sleep", lambda _seconds: None)
    publisher = Publisher(["node-1", "node-2", "node-3"], messages(10), lambda _message: None, window=5)
    assert publisher.run() == 5  # the window out unconfirmed when node-2 went
    assert hosts == ["node-1", "node-2", "node-3"]
    assert publisher.confirmed == publisher.taken == 10


def test_messages_the_broker_nacks_are_sent_again_until_it_takes_them(monkeypatch):
    class NacksTheFirstTwo(FakeConnection):
        def run(self):
            self.on_open(self)
            self.on_confirm(SimpleNamespace(method=Basic.Nack(delivery_tag=2, multiple=True)))
            self.run_timers()  # the pause, then the two again
            tag = 2
            while self.is_open:
                tag += 1
                self.on_confirm(SimpleNamespace(method=Basic.Ack(delivery_tag=tag, multiple=False)))

    monkeypatch.setattr(publisher_module.pika, "SelectConnection", NacksTheFirstTwo)
    confirmed = []
    publisher = Publisher(None, messages(4), confirmed.append, window=2)
    assert publisher.run() == 0  # the two nacked were not taken: sent again, none arrives twice
    assert sorted(confirmed) == sorted(messages(4))


def test_run_never_reports_success_unless_every_message_taken_was_confirmed():
    publisher = Publisher(None, messages(2), lambda _message: None)
    publisher.connect_and_publish = publisher.take  # takes one, "ends" without a confirm
    with pytest.raises(SendFailed, match="1 messages taken, 0 confirmed") as failed:
        publisher.run()
    assert failed.value.confirmed == 0


def test_a_stop_request_ends_the_send_with_the_number_the_broker_confirmed(monkeypatch):
    monkeypatch.setattr(publisher_module.pika, "SelectConnection", FakeConnection)
    reason = []
    sender = Publisher(None, messages(100), on_confirmed=lambda _message: None, window=5, stop_requested=lambda: (
        reason[0] if reason else None
    ))  # fmt: skip
    sender.on_confirmed = lambda _message: sender.confirmed == 20 and reason.append("stopped by SIGTERM")
    with pytest.raises(SendFailed, match="stopped by SIGTERM") as failed:
        sender.run()
    assert isinstance(failed.value.__cause__, StopRequested)
    assert failed.value.confirmed == sender.taken < 100  # what was out was confirmed; nothing more was taken
