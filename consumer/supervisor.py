"""The worker's supervisor: it keeps a worker (worker.py) consuming whatever the
broker does to its connection, channel or queue (a restart, a node lost, a delivery
timeout, task_queue deleted), saying what happened in one line each time, as pika's
ReconnectingExampleConsumer wraps its consumer. The worker exits only for what a
restart cannot fix: a refused login (or bad settings, worker.main)."""

import logging
import signal
import sys

from pika.exceptions import AMQPChannelError, AMQPConnectionError

from broker import ConsumerCancelled, LoginRefused, connect, is_wrong_queue_type
from lab.brokers import short_error
from lab.topology import QUEUE

WRONG_QUEUE_RETRY_SECONDS = 5

log = logging.getLogger("worker")


def run(worker):
    """Run the worker until SIGTERM or SIGINT (Ctrl+C); the exit status."""

    def request_stop(signum, _frame):
        if not worker.stopping.is_set():
            print(f"[*] {worker.name}: {signal.Signals(signum).name} received, stopping", flush=True)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        keep_consuming(worker)
    except LoginRefused as exc:
        print(
            f"worker: the broker refused the login of {worker.config.user!r} ({exc}). Check "
            "RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS in .env; the broker keeps the user "
            "of its first start (`docker compose down -v` resets it).",
            file=sys.stderr,
        )
        return 1
    print(f"[*] {worker.name} stopped", flush=True)
    return 0


def keep_consuming(worker):
    """Consume until asked to stop, starting again whenever the broker ends a session."""
    told_wrong_queue = False
    while not worker.stopping.is_set():
        connection = connect(worker.parameters, worker.stopping)
        if connection is None:
            return
        try:
            worker.consume(connection)
        except AMQPChannelError as exc:
            if is_wrong_queue_type(exc):
                if not told_wrong_queue:
                    log.warning(wrong_queue_type(worker.name, exc))
                told_wrong_queue = True
                worker.stopping.wait(WRONG_QUEUE_RETRY_SECONDS)
            else:
                log.warning("[!] %s lost its channel (%s); consuming again", worker.name, short_error(exc))
        except ConsumerCancelled as why:
            log.warning("[!] %s: the broker cancelled its consumer (%s); consuming again", worker.name, why)
        except AMQPConnectionError as exc:
            log.warning("[!] %s lost its broker connection (%s); reconnecting", worker.name, short_error(exc))
        finally:
            if connection.is_open:
                connection.close()  # unacknowledged tasks go back to the queue


def wrong_queue_type(name, exc):
    return (
        f"[!] {name}: {QUEUE} exists with another queue type ({exc.reply_text.split(': ', 1)[-1]}), "
        f"left by an old broker volume or a client that declared it first. Fix: `docker compose down -v` "
        f"(drops queued tasks), or delete {QUEUE} in the management UI; "
        f"retrying every {WRONG_QUEUE_RETRY_SECONDS} s"
    )
