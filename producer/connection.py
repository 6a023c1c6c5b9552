"""How the producer's programs reach the broker: the lab's settings (lab/settings.py)
as pika's connection parameters, the retry policy after a lost connection, and what
they say when the broker blocks publishing (a memory or disk alarm)."""

import logging
import random

import pika
import tenacity
from pika.exceptions import AMQPConnectionError

from lab.brokers import short_error

RECONNECT_FOR_SECONDS = 120
log = logging.getLogger("producer")


def connection_parameters(settings):
    """One set of parameters per broker host, in a random order: the producer's
    connections (lab.brokers.open_first, bulk_publish.Publisher) try them in turn."""
    return [
        pika.ConnectionParameters(
            host=host,
            port=settings.port,
            credentials=pika.PlainCredentials(settings.user, settings.password),
            client_properties={"connection_name": "producer"},
        )
        for host in random.sample(settings.hosts, len(settings.hosts))
    ]


class ConnectionLost(Exception):
    """The connection went away in the middle of the work: worth reconnecting."""


def reconnecting(what):
    """Retry policy after a lost connection: capped exponential backoff with jitter,
    a line at each wait, for at most RECONNECT_FOR_SECONDS."""

    def log_wait(retry_state):
        log.warning(
            "[!] %s: %s; reconnecting in %.1f s",
            what,
            short_error(retry_state.outcome.exception()),
            retry_state.upcoming_sleep,
        )

    return tenacity.Retrying(
        # OSError: while the broker container restarts, Docker's DNS does not know its name.
        retry=tenacity.retry_if_exception_type((ConnectionLost, AMQPConnectionError, OSError)),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=3),
        stop=tenacity.stop_after_delay(RECONNECT_FOR_SECONDS),
        before_sleep=log_wait,
        reraise=True,
    )


def say_blocked(reason, confirmed):
    log.warning("[!] the broker blocks publishing (%s: a memory or disk alarm); waiting for it to clear, "
                "%s of the tasks confirmed so far", reason, f"{confirmed:,}")  # fmt: skip


def say_unblocked():
    log.warning("[*] the broker unblocked publishing; sending on")
