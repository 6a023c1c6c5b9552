"""A big batch (`send.sh 50000`), published with pipelined confirms, surviving a lost connection.

Waiting for each confirm, as new_task.py does for a few tasks, caps a publisher at
a few hundred messages a second. Here up to WINDOW messages are out unconfirmed,
and each ack (often for many, multiple=True) lets more go; the messages are taken
from an iterator as the window allows, never all held. After a lost connection
(a broker restart) it reconnects and sends the unconfirmed ones again: none is
lost, one the broker already had may arrive twice. Any other failure ends the run
with SendFailed, which says how many messages the broker had confirmed.
"""

import itertools
import logging
import time
from collections import deque

import pika
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorPhaseErrorBase,
)
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker, NackError
from pika.spec import Basic

from connection import ConnectionLost, reconnecting, say_blocked, say_unblocked
from lab.brokers import reset, short_error

WINDOW = 1000
STOP_CHECK_SECONDS, STOP_WAIT_SECONDS = 0.2, 2.0
NACK_RETRY_SECONDS, NACK_PAUSE_SECONDS = 600, 5

log = logging.getLogger("publisher")


def open_failure(error):
    """The error of a failed SelectConnection open as an AMQPConnectionError, as BlockingConnection
    raises it: pika's internal workflow error is none, and a broker that takes TCP connections
    while it boots but drops the handshake would end the send instead of being retried."""
    if isinstance(error, AMQPConnectionWorkflowFailed):
        error = error.exceptions[-1]
    if isinstance(error, AMQPConnectorPhaseErrorBase):
        error = error.exception
    return error if isinstance(error, AMQPConnectionError) else AMQPConnectionError(error)


class MessageFailed(Exception):
    """Making the next message raised: a fault of the input, not of the connection."""


class SendFailed(Exception):
    """The run ended before every message was confirmed; `confirmed` of them were."""

    def __init__(self, reason, confirmed):
        super().__init__(reason)
        self.confirmed = confirmed


class Publisher:
    """Publishes (routing key, body, properties) messages to the default exchange,
    calling on_confirmed(message) as the broker confirms each one."""

    def __init__(self, parameters, messages, on_confirmed, window=WINDOW, stop_requested=lambda: None):
        # One broker, or a cluster's nodes: each connect takes the next in turn.
        self.parameters = list(parameters) if isinstance(parameters, (list, tuple)) else [parameters]
        self.connects = 0
        self.stop_requested = stop_requested  # returns why to stop (a signal's name), or None
        self.messages = iter(messages)
        self.on_confirmed = on_confirmed
        self.window = window
        self.to_send_again = deque()
        self.unconfirmed = {}  # delivery tag on the current channel -> message
        self.resent = 0
        self.taken = 0  # from `messages`
        self.confirmed = 0  # by the broker
        self.channel = None
        self.next_tag = 1
        self.failure = None
        self.finished = False
        self.nacked_since = None  # when the broker began to nack (monotonic), None after an ack
        self.blocked = False  # by a memory or disk alarm

    def run(self):
        """Publish every message; returns how many had to be sent again after a lost
        connection. The first connect must work; later losses are retried.
        Raises SendFailed, with the number confirmed, if not all were confirmed."""
        try:
            self.publish_all()
        except Exception as exc:
            raise SendFailed(short_error(exc), self.confirmed) from exc
        if self.confirmed != self.taken:
            raise SendFailed(f"{self.taken} messages taken, {self.confirmed} confirmed", self.confirmed)
        return self.resent

    def publish_all(self):
        try:
            self.connect_to_any()
        except ConnectionLost as lost:
            log.warning("[!] lost the connection while sending (%s); reconnecting", lost)
            for attempt in reconnecting("cannot reach the broker again yet"):
                with attempt:
                    self.connect_and_publish()

    def connect_to_any(self):
        """The first connection: each broker in turn until one opens."""
        for tries_left in reversed(range(len(self.parameters))):
            try:
                return self.connect_and_publish()
            except AMQPConnectionError:
                if not tries_left:
                    raise

    def connect_and_publish(self):
        """One connection: publish until all is confirmed, or raise what went wrong."""
        self.failure = None
        parameters = self.parameters[self.connects % len(self.parameters)]
        self.connects += 1
        connection = pika.SelectConnection(
            parameters,
            on_open_callback=lambda connection: connection.channel(on_open_callback=self.on_channel_open),
            on_open_error_callback=self.on_open_error,
            on_close_callback=self.on_connection_closed,
        )
        connection.add_on_connection_blocked_callback(self.on_blocked)
        connection.add_on_connection_unblocked_callback(self.on_unblocked)
        connection.ioloop.start()  # until on_open_error or on_connection_closed stops it
        if self.failure:
            raise self.failure

    def on_blocked(self, _connection, frame):
        self.blocked = True
        say_blocked(frame.method.reason, self.confirmed)

    def on_unblocked(self, _connection, _frame):
        self.blocked = False
        say_unblocked()

    def on_open_error(self, connection, error):
        self.failure = open_failure(error)
        connection.ioloop.stop()

    def on_connection_closed(self, connection, reason):
        if not self.finished and not self.failure:
            self.failure = ConnectionLost(f"{len(self.unconfirmed)} messages unconfirmed; {reason!r}")
        if isinstance(self.failure, ConnectionLost):
            self.resent += len(self.unconfirmed)  # the broker may have taken some: they arrive twice
        self.to_send_again.extend(self.unconfirmed.values())  # in the order they were sent
        self.unconfirmed.clear()
        connection.ioloop.stop()

    def on_channel_open(self, channel):
        self.channel = channel
        self.next_tag = 1
        channel.add_on_close_callback(self.on_channel_closed)
        channel.confirm_delivery(self.on_confirm, callback=lambda _frame: self.publish_more())
        self.watch_for_stop(channel.connection)

    def watch_for_stop(self, connection, deadline=None):
        """Every STOP_CHECK_SECONDS: on a stop request, take no more messages and close once
        those out are confirmed (or STOP_WAIT_SECONDS passed). A signal handler cannot raise
        instead: inside pika's I/O loop an exception looks like a lost connection."""
        if not connection.is_open:
            return
        if deadline is None and (reason := self.stop_requested()):
            self.failure = StopRequested(reason)
            self.messages, deadline = iter(()), time.monotonic() + STOP_WAIT_SECONDS
            self.to_send_again.clear()
        if deadline is not None and self.blocked:
            self.drop_unread(connection)
            return
        if deadline is not None and (not self.unconfirmed or time.monotonic() > deadline):
            connection.close()
            return
        connection.ioloop.call_later(STOP_CHECK_SECONDS, lambda: self.watch_for_stop(connection, deadline))

    def drop_unread(self, connection):
        """End a connection the broker blocked, at once (lab.brokers.reset): the messages
        not confirmed never arrive."""
        self.failure.dropped = len(self.unconfirmed)
        self.unconfirmed.clear()
        reset(connection)
        connection.ioloop.stop()

    def on_channel_closed(self, channel, reason):
        if isinstance(reason, ChannelClosedByBroker) and not self.failure:
            self.failure = ChannelRefused(reason)  # the broker refused something: a retry would not help
        if channel.connection.is_open:
            channel.connection.close()

    def publish_more(self):
        while len(self.unconfirmed) < self.window:
            message = self.take()
            if message is None:
                break
            routing_key, body, properties = message
            self.channel.basic_publish("", routing_key, body, properties)
            self.unconfirmed[self.next_tag] = message
            self.next_tag += 1
        if not self.unconfirmed:
            self.finished = True
            self.channel.connection.close()

    def take(self):
        """The next message to publish; None when there is none, or making it failed: raised
        inside pika's callback, an error would look like a lost connection worth reconnecting
        for, so it becomes the failure, and those already out are left to be confirmed."""
        if self.to_send_again:
            return self.to_send_again.popleft()
        try:
            message = next(self.messages, None)
        except Exception as exc:
            self.failure = MessageFailed(f"making message {self.taken + 1} failed: {short_error(exc)}")
            self.messages = iter(())
            return None
        if message is not None:
            self.taken += 1
        return message

    def on_confirm(self, frame):
        confirm = frame.method
        if confirm.multiple:  # the tags in order, as they were sent: only those it covers are looked at
            tags = list(itertools.takewhile(lambda tag: tag <= confirm.delivery_tag, self.unconfirmed))
        else:
            tags = [confirm.delivery_tag]
        if isinstance(confirm, Basic.Nack):
            self.on_nack(tags)
            return
        self.nacked_since = None
        for tag in tags:
            message = self.unconfirmed.pop(tag)
            self.confirmed += 1
            self.on_confirmed(message)
        self.publish_more()

    def on_nack(self, tags):
        """The broker could not store these messages. On a cluster that is task_queue
        without a majority of its members up (RabbitMQ nacks after a minute): send them
        again, for NACK_RETRY_SECONDS, then give up."""
        now = time.monotonic()
        self.nacked_since = self.nacked_since or now
        if now - self.nacked_since > NACK_RETRY_SECONDS:
            self.failure = ChannelRefused(NackError([self.unconfirmed[tag] for tag in tags]))
            self.channel.connection.close()
            return
        log.warning("[!] the broker could not store %d messages (nack): on a cluster, the queue has no majority "
                    "of its nodes up (scripts/doctor.sh); sending them again in %d s, %d of the tasks confirmed "
                    "so far", len(tags), NACK_PAUSE_SECONDS, self.confirmed)  # fmt: skip
        self.to_send_again.extend(self.unconfirmed.pop(tag) for tag in tags)  # not taken: none arrives twice
        self.channel.connection.ioloop.call_later(NACK_PAUSE_SECONDS, self.publish_more)


class ChannelRefused(Exception):
    """The broker closed the channel or refused a message: retrying would not help."""


class StopRequested(Exception):
    """A signal asked the publisher to stop."""

    dropped = 0  # messages written but unconfirmed when the publisher stopped during an alarm
