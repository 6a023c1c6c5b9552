"""A work-queue worker: RabbitMQ tutorial two's worker.py, grown up.

It takes tasks from the durable quorum queue `task_queue` and simulates one
unit of work per dot in the task text ("Task 3..." is three units of
SECONDS_PER_DOT seconds). A task is acknowledged only after its work is done,
so a task held by a worker that dies goes to another worker.

The work runs in its own thread while the main thread keeps the connection
alive (heartbeats), and the acknowledgement is handed back to the main thread
with add_callback_threadsafe, as pika's basic_consumer_threaded example does.
A task with no work to do is settled on the main thread at once.

When a task names a queue in its reply_to property (scripts/send.sh --wait
does), the worker publishes records of it there: "done" (worker, times,
redelivered or not), and "started" first when the task takes time. That is
how send.sh --wait knows who did what, and when; a task nobody waits for
costs no record.

A task that is not a task (not UTF-8 text, empty, or asking for absurd work)
is rejected without requeueing: task_queue's policy dead-letters it to
`dead_letter_queue`, and the other tasks go on.
"""

import functools
import json
import logging
import math
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
import pika
import tenacity
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AuthenticationError,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

QUEUE = "task_queue"
# Exactly the official tutorial's declaration, so its scripts work against the
# lab; anything else (delivery limit, dead-lettering) is set by policy.
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
# Persistent, so records waiting for send.sh --wait survive a broker restart.
RECORD_PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)
# Where task_queue's policy (rabbitmq/start-broker.sh) sends rejected tasks.
DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE = "dead_letters", "dead_letter_queue"
# Classic: a quorum queue would drop a task handed back 20 times by scripts/dead-letters.sh list.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "classic"}
MAX_DOTS = 3600
RETRY_MAX_WAIT_SECONDS = 3.0
# Left of the stop grace period for closing the connection before Docker kills us.
CLOSE_MARGIN_SECONDS = 1.5
ACCESS_REFUSED, NOT_ALLOWED = 403, 530

log = logging.getLogger("worker")


class ConfigError(ValueError):
    """A setting in the environment is missing or invalid."""


class LoginRefused(Exception):
    """The broker refused the lab's credentials: retrying cannot help."""


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    user: str
    password: str
    prefetch: int
    seconds_per_dot: float
    stop_grace_seconds: float
    heartbeat_seconds: int | None
    worker_name: str

    @classmethod
    def from_env(cls, env=os.environ):
        return cls(
            host=env.get("RABBITMQ_HOST", "rabbitmq"),
            port=_number(env, "RABBITMQ_PORT", "5672", int, minimum=1),
            user=_required(env, "RABBITMQ_DEFAULT_USER"),
            password=_required(env, "RABBITMQ_DEFAULT_PASS"),
            prefetch=_number(env, "PREFETCH", "1", int, minimum=0),
            seconds_per_dot=_number(env, "SECONDS_PER_DOT", "1", float, minimum=0),
            stop_grace_seconds=_number(env, "STOP_GRACE_SECONDS", "10", float, minimum=0),
            # Unset: the broker's (60 s). The work runs off the connection's thread, so
            # a task longer than this does not stop heartbeats.
            heartbeat_seconds=_number(env, "HEARTBEAT_SECONDS", None, int, minimum=1),
            worker_name=env.get("WORKER_NAME") or default_worker_name(),
        )


def _required(env, name):
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is not set (it comes from .env)")
    return value


def _number(env, name, default, kind, minimum):
    text = env.get(name) or default
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} >= {minimum}, got {text!r}")
    return value


def default_worker_name():
    """The replica's Compose name, e.g. "consumer-2", else the hostname.

    Docker's DNS server answers a reverse lookup of a container's address with
    the container's name, "<project>-consumer-2.<network>." (/etc/hosts, which
    the system resolver reads first, only knows the container ID).
    """
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


def causes(exc):
    """The error and the errors it wraps: pika nests the cause of a failed
    connect in exception args and in an `exception` attribute."""
    while isinstance(exc, BaseException):
        yield exc
        exc = getattr(exc, "exception", None) or (exc.args[0] if exc.args else None)


def is_login_refused(exc):
    return any(
        isinstance(cause, (AuthenticationError, ProbableAuthenticationError, ProbableAccessDeniedError))
        or (isinstance(cause, ConnectionClosedByBroker) and cause.reply_code in (ACCESS_REFUSED, NOT_ALLOWED))
        for cause in causes(exc)
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


def short_error(exc):
    """The innermost cause, e.g. "ConnectionRefusedError: [Errno 111] Connection refused"."""
    *_, exc = causes(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class PoisonTask(ValueError):
    """A task no worker can process: it goes to the dead-letter queue, not back to task_queue."""


def read_task(body):
    """The task's text, or PoisonTask saying why there is no valid task in `body`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PoisonTask("not valid UTF-8 text") from None
    if not text.strip():
        raise PoisonTask("an empty task")
    if text.count(".") > MAX_DOTS:
        raise PoisonTask(f"{text.count('.')} units of work, more than the {MAX_DOTS} a task may ask for")
    return text


def work_seconds(text, seconds_per_dot):
    return text.count(".") * seconds_per_dot


_END = object()  # tells the work thread that the session is over


def done_line(worker, text, seconds):
    """The tutorial's "[x] Done" line, with who did the task and how long it took."""
    return f"[x] Done {text!r} ({worker}, {seconds:.1f} s)"


class QuickTasksLog:
    """The "[x] Done" lines of tasks with no work: the first LINES_PER_SECOND of each
    second, the others summed up in one line a second. Such tasks come by the
    thousand (bench loads, `send.sh 100000 --dots 0`), and a log line costs a
    worker (and Docker) more than the task itself."""

    LINES_PER_SECOND = 10

    def __init__(self, name):
        self.name = name
        self.second_started = time.monotonic()
        self.shown = self.folded = 0

    def line(self, text):
        """The task's line, or None if it is only counted."""
        if self.shown < self.LINES_PER_SECOND:
            self.shown += 1
            return done_line(self.name, text, 0.0)
        self.folded += 1
        return None

    def summary(self):
        """Once a second at most: the line for the tasks counted, if any."""
        if time.monotonic() - self.second_started < 1:
            return None
        folded, self.folded, self.shown, self.second_started = self.folded, 0, 0, time.monotonic()
        return f"[x] ... and {folded:,} more tasks with no work done ({self.name})" if folded else None


@dataclass
class Task:
    """A delivered task that takes time, handed to the work thread."""

    delivery_tag: int
    reply_to: str | None  # the queue for its records, if anyone waits for them
    text: str
    seconds: float
    record: dict


@dataclass
class Session:
    """One connection's life, shared by the connection's thread and the work thread.

    Finished tasks are settled in groups: first their records are committed, one
    message (a JSON list) per queue that asked for them, on a channel in
    transaction mode; then the tasks are acked (or rejected). So a task never
    leaves task_queue without its record, even if the broker restarts between
    the two (records published without a commit just before the ack were seen
    lost that way); a worker killed between the two leaves the task
    unacknowledged, to be done again and flagged as a redelivery. Tasks nobody
    waits for have no records, and no commit to wait for.
    """

    connection: pika.BlockingConnection
    channel: pika.adapters.blocking_connection.BlockingChannel
    records: pika.adapters.blocking_connection.BlockingChannel  # in transaction mode
    over: threading.Event = field(default_factory=threading.Event)
    pending: list = field(default_factory=list)  # (reply_to, record, delivery tag or None, log line or None)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unsettled: set = field(default_factory=set)  # delivery tags not yet acked or rejected

    def add(self, reply_to, record, delivery_tag=None, line=None):
        """Queue a record (with the task's settlement and log line, if it ended).
        Returns whether it is the first one queued since the last settle."""
        with self.lock:
            self.pending.append((reply_to, record, delivery_tag, line))
            return len(self.pending) == 1

    def tell(self, reply_to, record, delivery_tag=None, line=None):
        """From the work thread: add, and have the connection's thread settle soon."""
        if self.add(reply_to, record, delivery_tag, line):
            self.connection.add_callback_threadsafe(self.settle)

    def settle(self):
        """On the connection's thread: publish the queued records, then settle their tasks."""
        with self.lock:
            pending, self.pending = self.pending, []
        if not pending:
            return
        records = {}
        for reply_to, record, _tag, _line in pending:
            if reply_to:
                records.setdefault(reply_to, []).append(record)
        for reply_to, group in records.items():
            self.records.basic_publish("", reply_to, json.dumps(group), RECORD_PROPERTIES)
        if records:
            self.records.tx_commit()
        done = []
        for _to, record, tag, _line in pending:
            if record["event"] == "done":
                done.append(tag)
            elif record["event"] == "rejected":  # dead-lettered by task_queue's policy
                self.channel.basic_reject(tag, requeue=False)
                self.unsettled.discard(tag)
        self.acknowledge(done)
        lines = "".join(f"{line}\n" for _to, _record, _tag, line in pending if line)
        if lines:
            sys.stdout.write(lines)  # one write for the group
            sys.stdout.flush()

    def acknowledge(self, tags):
        """Ack these deliveries: with one multiple ack when no earlier delivery is still unsettled."""
        if not tags:
            return
        self.unsettled.difference_update(tags)
        last = max(tags)
        if all(tag > last for tag in self.unsettled):
            self.channel.basic_ack(last, multiple=True)
        else:
            for tag in tags:
                self.channel.basic_ack(tag)


class Worker:
    def __init__(self, config):
        self.config = config
        self.name = config.worker_name
        self.stopping = threading.Event()
        self.quick_tasks = QuickTasksLog(self.name)
        self.parameters = pika.ConnectionParameters(
            host=config.host,
            port=config.port,
            credentials=pika.PlainCredentials(config.user, config.password),
            client_properties={"connection_name": self.name},
            heartbeat=config.heartbeat_seconds,
        )

    def request_stop(self, signum, _frame):
        if not self.stopping.is_set():
            print(f"[*] {self.name}: {signal.Signals(signum).name} received, stopping", flush=True)
        self.stopping.set()

    def run(self):
        """Consume until asked to stop, reconnecting whenever the connection is lost."""
        target = f"{self.config.host}:{self.config.port}"
        while not self.stopping.is_set():
            try:
                connection = connection_retrying(self.stopping, target)(pika.BlockingConnection, self.parameters)
            except (AMQPConnectionError, OSError) as exc:
                if is_login_refused(exc):
                    raise LoginRefused(short_error(exc)) from exc
                if self.stopping.is_set():
                    return  # stopped while waiting for the broker
                raise
            try:
                self.consume(connection)
            except AMQPConnectionError as exc:
                if is_login_refused(exc):
                    raise LoginRefused(short_error(exc)) from exc
                log.warning("[!] %s lost its broker connection (%s); reconnecting", self.name, short_error(exc))

    def consume(self, connection):
        """One connection's life: consume until stopped, then end it cleanly."""
        channel = connection.channel()
        channel.queue_declare(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, "fanout", durable=True)
        channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
        channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
        channel.basic_qos(prefetch_count=self.config.prefetch)
        records = connection.channel()
        records.tx_select()
        session = Session(connection, channel, records)
        deliveries = queue.Queue()
        work = threading.Thread(target=self.work_loop, args=(session, deliveries), daemon=True)
        work.start()
        # The worker's name as consumer tag: the management UI lists consumers by it.
        consumer_tag = channel.basic_consume(
            QUEUE, functools.partial(self.on_delivery, session, deliveries), consumer_tag=self.name
        )
        prefetch = self.config.prefetch or "unlimited"
        print(f"[*] {self.name} waiting for tasks on {QUEUE} (prefetch {prefetch}). To exit press CTRL+C", flush=True)
        try:
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=1)  # returns after each group of deliveries
                session.settle()
                if summary := self.quick_tasks.summary():
                    print(summary, flush=True)
            channel.basic_cancel(consumer_tag)
            deliveries.put(_END)
            self.finish_task_in_hand(connection, work)
        finally:
            session.over.set()
            deliveries.put(_END)
            work.join(timeout=1)  # let it report a task it hands back
            if connection.is_open:
                connection.close()  # unacknowledged tasks go back to the queue

    def finish_task_in_hand(self, connection, work):
        """Let the task in hand finish within the stop grace period, acknowledging it."""
        deadline = time.monotonic() + max(0.0, self.config.stop_grace_seconds - CLOSE_MARGIN_SECONDS)
        while work.is_alive() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        connection.process_data_events(time_limit=0)  # the last acknowledgement

    def on_delivery(self, session, deliveries, _channel, method, properties, body):
        """On the connection's thread. A task that needs no work (or cannot be done) is
        settled with the others of its group of deliveries, without a trip through the
        work thread: that is what keeps a worker as fast as a bare consume loop on them."""
        session.unsettled.add(method.delivery_tag)
        if self.stopping.is_set():
            return  # not started: it goes back to the queue when the connection closes
        record = {
            "worker": self.name,
            "task": body.decode("utf-8", errors="replace"),
            "message_id": properties.message_id,
            "batch": properties.correlation_id,
            "redelivered": method.redelivered,
            "started": time.time(),
        }
        try:
            text = read_task(body)
        except PoisonTask as poison:
            line = f"[!] Rejected {body[:60]!r} ({self.name}): {poison}; to the dead-letter queue"
            rejected = {"event": "rejected", **record, "reason": str(poison)}
            session.add(properties.reply_to, rejected, method.delivery_tag, line)
            return
        seconds = work_seconds(text, self.config.seconds_per_dot)
        if seconds:
            deliveries.put(Task(method.delivery_tag, properties.reply_to, text, seconds, record))
        else:
            record["finished"] = record["started"]
            done = {"event": "done", **record}
            session.add(properties.reply_to, done, method.delivery_tag, self.quick_tasks.line(text))

    def work_loop(self, session, deliveries):
        """Runs in the work thread: one task at a time, in delivery order."""
        while True:
            delivery = deliveries.get()
            if delivery is _END or session.over.is_set():
                return
            if self.stopping.is_set():
                continue  # not started: it goes back to the queue when the connection closes
            try:
                if not self.work(session, delivery):
                    return
            except AMQPConnectionError:  # closed meanwhile: the broker redelivers the task
                return

    def work(self, session, task):
        """Do one task's work, then have it acknowledged. False if the session ended first."""
        record = task.record
        record["started"] = time.time()
        again = ", redelivered" if record["redelivered"] else ""
        print(f"[x] Received {task.text!r} ({self.name}{again})", flush=True)
        session.tell(task.reply_to, {"event": "started", **record})  # progress for send.sh --wait
        if session.over.wait(task.seconds):
            print(f"[!] Handed back {task.text!r} ({self.name}): stopped before it was done", flush=True)
            return False
        record["finished"] = time.time()
        line = done_line(self.name, task.text, record["finished"] - record["started"])
        session.tell(task.reply_to, {"event": "done", **record}, task.delivery_tag, line)
        return True


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # its errors are reported here, in words
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    worker = Worker(config)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    try:
        worker.run()
    except LoginRefused as exc:
        print(
            f"worker: the broker refused the login of {config.user!r} ({exc}). Check "
            "RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS in .env; the broker keeps the user "
            "of its first start (`docker compose down -v` resets it).",
            file=sys.stderr,
        )
        return 1
    except AMQPChannelError as exc:
        print(f"worker: the broker refused to set up {QUEUE} ({short_error(exc)})", file=sys.stderr)
        return 1
    print(f"[*] {worker.name} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
