"""The pipelined publisher's bookkeeping, driven by a fake channel (no broker needed)."""

from types import SimpleNamespace

from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
)
from pika.exceptions import AMQPConnectionError, ProbableAuthenticationError, StreamLostError
from pika.spec import Basic

from publisher import ConnectionLost, Publisher, describe


class FakeChannel:
    """Records what is published; confirms come from the test."""

    def __init__(self):
        self.published = []
        self.connection = SimpleNamespace(is_open=True, close=lambda: None, ioloop=SimpleNamespace(stop=lambda: None))

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
        assert describe(publisher.failure).startswith(inner)
    wrong_login = ProbableAuthenticationError("ACCESS_REFUSED")
    publisher.on_open_error(FakeChannel().connection, wrong_login)
    assert publisher.failure is wrong_login
