"""What the two images both know: the queues and how pika's nested errors read.

Each image builds from its own folder, so the worker's copy (consumer/broker.py)
and the producer's (producer/queues.py, publisher.describe) stay apart; these
tests fail when they disagree."""

import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError
from pika.exceptions import (
    AMQPConnectionError,
    ConnectionClosedByBroker,
    ProbableAuthenticationError,
    StreamLostError,
)

import broker
import queues
from publisher import describe


@pytest.mark.parametrize(
    "name", ["QUEUE", "QUEUE_ARGUMENTS", "DEAD_LETTER_EXCHANGE", "DEAD_LETTER_QUEUE", "DEAD_LETTER_QUEUE_ARGUMENTS"]
)
def test_both_declare_the_same_queues(name):
    assert getattr(queues, name) == getattr(broker, name)


@pytest.mark.parametrize(
    "error",
    [
        AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))),
        AMQPConnectionError(ProbableAuthenticationError("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED'")),
        StreamLostError("Transport indicated EOF"),
        ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure"),
        AMQPConnectionError(),
    ],
    ids=["refused", "login", "stream-lost", "broker-restart", "bare"],
)
def test_both_unwrap_pika_errors_alike(error):
    assert describe(error) == broker.short_error(error)
