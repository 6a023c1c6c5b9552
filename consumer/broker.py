"""The worker's connection to the broker: connect (tenacity's retry around it, to the
first node of a cluster that answers), and connect again whatever the broker does (a
restart, a node lost, a delivery timeout, task_queue deleted), in one line each time,
as pika's ReconnectingExampleConsumer wraps its consumer. Only a refused login ends
the retries: a restart cannot fix it."""

import contextlib
import logging
import random
import re
import socket
import time

import dns.exception
import dns.resolver
import pika
import tenacity
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AuthenticationError,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from lab import brokers
from lab.brokers import causes, short_error
from lab.topology import QUEUE

RETRY_MAX_WAIT_SECONDS = 3.0
WRONG_QUEUE_RETRY_SECONDS = 5
CANCEL_CHECK_SECONDS = 0.5  # how long a cancelled consumer looks for task_queue's deletion
ACCESS_REFUSED, NOT_ALLOWED, PRECONDITION_FAILED = 403, 530, 406

log = logging.getLogger("worker")


class ConsumerCancelled(Exception):
    """The broker cancelled the worker's consumer: task_queue was deleted, or (RabbitMQ 4.3)
    the worker held a task past task_queue's consumer timeout and the queue took it back."""


class LoginRefused(Exception):
    """The broker refused the lab's credentials: retrying cannot help."""


class Reconnecting:
    """Whatever the broker does to a session, said in one line; the worker then connects again."""

    def __init__(self, worker, stopping):
        self.worker, self.stopping, self.told_wrong_queue = worker, stopping, False

    @contextlib.contextmanager
    def session(self, connection):
        try:
            yield
        except AMQPChannelError as exc:
            if not is_wrong_queue_type(exc):
                log.warning("[!] %s lost its channel (%s); consuming again", self.worker, short_error(exc))
                return
            if not self.told_wrong_queue:
                log.warning(wrong_queue_type(self.worker, exc))
            self.told_wrong_queue = True
            self.stopping.wait(WRONG_QUEUE_RETRY_SECONDS)
        except ConsumerCancelled as why:
            log.warning("[!] %s: the broker cancelled its consumer (%s); consuming again", self.worker, why)
        except AMQPConnectionError as exc:
            log.warning("[!] %s lost its broker connection (%s); reconnecting", self.worker, short_error(exc))
        finally:
            if connection.is_open:
                connection.close()  # unacknowledged tasks go back to the queue


def broker_order(hosts, worker):
    """The hosts to try, in order. Worker N (consumer-N) tries host N first, round
    the list, so a cluster's workers spread evenly over its nodes (a random pick
    often leaves a node without any); then the others, shuffled."""
    number = re.search(r"-(\d+)$", worker)
    first = (int(number.group(1)) - 1) % len(hosts) if number else random.randrange(len(hosts))
    others = [host for index, host in enumerate(hosts) if index != first]
    return [hosts[first], *random.sample(others, len(others))]


def connection_parameters(settings, worker):
    """One set of parameters per broker host (broker_order): when its broker is
    gone, the worker moves to the next that takes it."""
    return [
        pika.ConnectionParameters(
            host=host,
            port=settings.port,
            credentials=pika.PlainCredentials(settings.user, settings.password),
            client_properties={"connection_name": worker},
            heartbeat=settings.heartbeat_seconds,
        )
        for host in broker_order(settings.hosts, worker)
    ]


def is_login_refused(exc):
    return any(
        isinstance(cause, (AuthenticationError, ProbableAuthenticationError, ProbableAccessDeniedError))
        or (isinstance(cause, ConnectionClosedByBroker) and cause.reply_code in (ACCESS_REFUSED, NOT_ALLOWED))
        for cause in causes(exc)
    )


def is_worth_retrying(exc):
    """Broker not up yet, restarting, or unreachable for a while: yes. Bad login: no.
    OSError covers a broker whose name does not resolve: Docker's DNS only knows a
    container while it runs."""
    return isinstance(exc, (AMQPConnectionError, OSError)) and not is_login_refused(exc)


def connection_retrying(stop_event, describe_target):
    """Retry policy for connecting: capped exponential backoff with full jitter,
    a log line at each wait, and no retry on a refused login."""

    def log_wait(retry_state):
        log.warning(
            "[!] broker %s not reachable (%s); retrying in %.1f s (attempt %d)",
            describe_target,
            short_error(retry_state.outcome.exception()),
            retry_state.upcoming_sleep,
            retry_state.attempt_number,
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_worth_retrying),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=RETRY_MAX_WAIT_SECONDS),
        stop=tenacity.stop_when_event_set(stop_event),
        sleep=stop_event.wait,  # a stop request ends the wait at once
        before_sleep=log_wait,
        reraise=True,
    )


def open_first(parameters):
    """A connection to the first broker in the list that takes one, logging which (on a cluster)."""

    def say_which(each):
        if len(parameters) > 1:
            log.info("[*] %s connected to %s", each.client_properties["connection_name"], each.host)

    return brokers.open_first(parameters, refuse=is_login_refused, connected=say_which)


def connect(parameters, stop_event):
    """A connection to one of the brokers, once one takes it; None if asked to stop
    meanwhile. Raises LoginRefused when the broker refuses the credentials."""
    target = ", ".join(f"{each.host}:{each.port}" for each in parameters)
    try:
        return connection_retrying(stop_event, target)(open_first, parameters)
    except (AMQPConnectionError, OSError) as exc:
        if is_login_refused(exc):
            raise LoginRefused(short_error(exc)) from exc
        if stop_event.is_set():
            return None
        raise


def is_wrong_queue_type(exc):
    """task_queue exists with another type than the lab's (an old broker volume)."""
    return (
        isinstance(exc, ChannelClosedByBroker)
        and exc.reply_code == PRECONDITION_FAILED
        and "inequivalent arg 'x-queue-type'" in exc.reply_text
    )


def wrong_queue_type(worker, exc):
    return (
        f"[!] {worker}: {QUEUE} exists with another queue type ({exc.reply_text.split(': ', 1)[-1]}), "
        f"left by an old broker volume or a client that declared it first. Fix: `docker compose down -v` "
        f"(drops queued tasks), or delete {QUEUE} in the management UI; "
        f"retrying every {WRONG_QUEUE_RETRY_SECONDS} s"
    )


def why_cancelled(connection, holding):
    """Why the broker cancelled the consumer. RabbitMQ 4.3 cancels (where 4.0 closed the
    channel) a consumer that kept a delivery past the queue's consumer timeout, and gives
    the delivery to another consumer; it also cancels every consumer of a deleted queue,
    a moment before the queue is gone (a passive declare still finds it at once)."""
    channel = connection.channel()
    deadline = time.monotonic() + CANCEL_CHECK_SECONDS
    try:
        while time.monotonic() < deadline:
            channel.queue_declare(QUEUE, passive=True)
            connection.sleep(0.05)
    except ChannelClosedByBroker:
        return f"{QUEUE} was deleted"
    channel.close()
    if holding:
        return f"its task timed out: not acknowledged within {QUEUE}'s consumer timeout"
    return f"no reason given; {QUEUE} deleted and declared again?"


def worker_name():
    """The replica's Compose name, e.g. "consumer-2", else the hostname. Docker's DNS
    server answers a reverse lookup of a container's address with the container's name,
    "<project>-consumer-2.<network>." (/etc/hosts only knows the container ID)."""
    hostname = socket.gethostname()
    try:
        full_name = str(dns.resolver.resolve_address(socket.gethostbyname(hostname), lifetime=2)[0])
    except (OSError, dns.exception.DNSException):
        return hostname
    return replica_name(full_name) or hostname


def replica_name(full_name):
    """ "rabbitmq-lab-consumer-2.rabbitmq-lab_default." -> "consumer-2" """
    match = re.search(r"[^-.]+-\d+$", full_name.split(".")[0])
    return match.group(0) if match else None
