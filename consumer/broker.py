"""The worker's side of the broker: the queues it declares, how it connects, and
which errors are worth waiting out."""

import logging
import random
import re

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

QUEUE = "task_queue"
# Exactly the official tutorial's declaration, so its scripts work against the
# lab; anything else (delivery limit, dead-lettering, consumer timeout) is set
# by policy (rabbitmq/start-broker.sh).
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
# Where task_queue's policy sends rejected tasks.
DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE = "dead_letters", "dead_letter_queue"
# Classic: a quorum queue would drop a task handed back 20 times by scripts/dead-letters.sh list.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "classic"}
RETRY_MAX_WAIT_SECONDS = 3.0
ACCESS_REFUSED, NOT_ALLOWED, PRECONDITION_FAILED = 403, 530, 406

log = logging.getLogger("worker")


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
    channel.queue_declare(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    if dead_letters:
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, "fanout", durable=True)
        channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
        channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)


def causes(exc):
    """The error and the errors it wraps: pika nests the cause of a failed
    connect in exception args and in an `exception` attribute."""
    while isinstance(exc, BaseException):
        yield exc
        exc = getattr(exc, "exception", None) or (exc.args[0] if exc.args else None)


def short_error(exc):
    """The innermost cause, e.g. "ConnectionRefusedError: [Errno 111] Connection refused"."""
    *_, exc = causes(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
    """A connection to the first broker in the list that takes one, logging which.
    Given the list itself, pika gives up at the first name that does not resolve,
    which is what a dead cluster node's container is."""
    for number, each in enumerate(parameters, start=1):
        try:
            connection = pika.BlockingConnection(each)
        except (AMQPConnectionError, OSError) as exc:
            if number == len(parameters) or is_login_refused(exc):
                raise
            continue
        if len(parameters) > 1:
            log.info("[*] %s connected to %s", each.client_properties["connection_name"], each.host)
        return connection


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
