"""The lab's own events (lab/schema.py), heard from this machine: a queue of this
program's own, bound to the fanout exchange lab.events before it acts, so it hears
everything the workers and the producer say from then on. Every event is checked
against the schema (anything on the exchange may be sent by anyone); one that fails
is dropped."""

import time

import pika
from pika.exceptions import AMQPError

from lab.brokers import short_error
from lab.schema import events_of
from lab.topology import EVENTS_EXCHANGE, declare_events_exchange
from labctl.docker import DOCTOR, Stop


class Events:
    def __init__(self, settings):
        parameters = settings.connection_parameters("demo", connection_attempts=3, retry_delay=1)
        try:
            self.connection = pika.BlockingConnection(parameters)
            self.channel = self.connection.channel()
            declare_events_exchange(self.channel)
            self.queue = self.channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            self.channel.queue_bind(self.queue, EVENTS_EXCHANGE)
        except (AMQPError, OSError) as exc:
            raise Stop(f"cannot hear the lab's events on {settings.amqp_host}:{settings.amqp_port} "
                       f"({short_error(exc)}); {DOCTOR}") from exc  # fmt: skip
        self.heard = []  # every valid event so far, in order

    def listen(self, seconds):
        """The events that come within SECONDS (fewer seconds once none comes for a moment)."""
        new, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            method, _, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.connection.sleep(min(left, 0.1))
                continue
            new += events_of(body)[0]
        self.heard += new
        return new

    def wait_for(self, matches, deadline):
        """The first event heard that `matches` says yes to, or None at the deadline (time.monotonic)."""
        for event in self.heard:
            if matches(event):
                return event
        while time.monotonic() < deadline:
            for event in self.listen(min(0.2, deadline - time.monotonic())):
                if matches(event):
                    return event
        return None

    def close(self):
        try:
            self.connection.close()
        except (AMQPError, OSError):
            pass  # the broker is gone (a demo restarted or killed it): nothing to close
