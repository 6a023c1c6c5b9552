"""The worker's side of the broker: how it connects (to the first node that answers,
lab.brokers), the queues it declares (lab.topology), and which errors are worth waiting out."""

import logging
import random
import re
import time

import pika
import tenacity
from pika.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from lab import brokers
from lab.brokers import causes, short_error
from lab.topology import QUEUE, declare_dead_letters, declare_task_queue

RETRY_MAX_WAIT_SECONDS = 3.0
CANCEL_CHECK_SECONDS = 0.5  # how long a cancelled consumer looks for task_queue's deletion
ACCESS_REFUSED, NOT_ALLOWED, PRECONDITION_FAILED = 403, 530, 406

log = logging.getLogger("worker")


class ConsumerCancelled(Exception):
    """The broker cancelled the worker's consumer: task_queue was deleted, or (RabbitMQ 4.3)
    the worker held a task past task_queue's consumer timeout and the queue took it back."""


class LoginRefused(Exception):
    """The broker refused the lab's credentials: retrying cannot help."""


def broker_order(hosts, worker_name):
    """The hosts to try, in order. Worker N (consumer-N) tries host N first, round
    the list, so a cluster's workers spread evenly over its nodes (a random pick
    often leaves a node without any); then the others, shuffled."""
    number = re.search(r"-(\d+)$", worker_name)
    first = (int(number.group(1)) - 1) % len(hosts) if number else random.randrange(len(hosts))
    others = [host for index, host in enumerate(hosts) if index != first]
    return [hosts[first], *random.sample(others, len(others))]


def connection_parameters(config):
    """One set of parameters per broker host (broker_order): when its broker is
    gone, the worker moves to the next that takes it."""
    hosts = broker_order(config.hosts, config.worker_name)
    return [
        pika.ConnectionParameters(
            host=host,
            port=config.port,
            credentials=pika.PlainCredentials(config.user, config.password),
            client_properties={"connection_name": config.worker_name},
            heartbeat=config.heartbeat_seconds,
        )
        for host in hosts
    ]


def declare_queues(channel, dead_letters=True):
    """task_queue as the tutorial declares it, and where its rejected tasks go.

    On a cluster the classic dead_letter_queue lives on one node, and declaring it
    while that node is down waits until the node is back: a worker that lost its
    node declares task_queue only (dead_letters=False). Meanwhile task_queue's
    at-least-once dead-lettering keeps the rejected tasks."""
    declare_task_queue(channel)
    if dead_letters:
        declare_dead_letters(channel)


def is_login_refused(exc):
    return any(
        isinstance(cause, (AuthenticationError, ProbableAuthenticationError, ProbableAccessDeniedError))
        or (isinstance(cause, ConnectionClosedByBroker) and cause.reply_code in (ACCESS_REFUSED, NOT_ALLOWED))
        for cause in causes(exc)
    )


def is_wrong_queue_type(exc):
    """task_queue exists with another type than the lab's (an old broker volume)."""
    return (
        isinstance(exc, ChannelClosedByBroker)
        and exc.reply_code == PRECONDITION_FAILED
        and "inequivalent arg 'x-queue-type'" in exc.reply_text
    )


def is_worth_retrying(exc):
    """Broker not up yet, restarting, or unreachable for a while: yes. Bad login: no.

    OSError covers a broker whose name does not resolve: Docker's DNS only
    knows a container while it runs.
    """
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
