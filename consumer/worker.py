"""A work-queue worker: RabbitMQ tutorial two's worker.py, grown up.

It takes tasks from the durable quorum queue `task_queue` and simulates one
unit of work per dot in the task text ("Task 3..." is three units of
SECONDS_PER_DOT seconds). A task is acknowledged only after its work is done,
so a task held by a worker that dies goes to another worker.

The work runs in its own thread while the connection's thread keeps the
connection alive (heartbeats) and settles finished tasks (settlement.py), as
pika's basic_consumer_threaded example does. A task with no work is settled
on the connection's thread at once. What happens to each task is also told to
the live dashboard (events.py), never at the cost of a task.

Whatever the broker does to the worker's connection, channel or queue (a
restart, a delivery timeout, the queue deleted), the worker says what
happened in one line and consumes again. It exits only for what a restart
cannot fix: bad settings or a refused login.
"""

import contextlib
import functools
import logging
import queue
import signal
import sys
import threading
import time

from pika.exceptions import AMQPChannelError, AMQPConnectionError, AMQPError, ChannelClosedByBroker

from broker import LoginRefused, connect, connection_parameters, declare_queues, is_wrong_queue_type
from events import Events
from lab.brokers import short_error
from lab.topology import QUEUE
from settings import Config, ConfigError
from settlement import Session
from tasks import PoisonTask, QuickTasksLog, Task, done_line, read_task, work_seconds

# Left of the stop grace period for closing the connection before Docker kills us.
CLOSE_MARGIN_SECONDS = 1.5
TICK_SECONDS = 0.5  # how often the connection's thread looks at stop requests and log summaries
WRONG_QUEUE_RETRY_SECONDS = 5
CANCEL_CHECK_SECONDS = 0.5  # how long a cancelled consumer looks for task_queue's deletion

log = logging.getLogger("worker")
_END = object()  # tells the work thread that the session is over


class ConsumerCancelled(Exception):
    """The broker cancelled the worker's consumer: task_queue was deleted, or (RabbitMQ 4.3)
    the worker held a task past task_queue's consumer timeout and the queue took it back."""


class Worker:
    def __init__(self, config):
        self.config = config
        self.name = config.worker_name
        self.parameters = connection_parameters(config)
        self.stopping = threading.Event()
        self.quick_tasks = QuickTasksLog(self.name)
        self.sessions = 0
        self.events = Events(self.name)  # for the dashboard

    def request_stop(self, signum, _frame):
        if not self.stopping.is_set():
            print(f"[*] {self.name}: {signal.Signals(signum).name} received, stopping", flush=True)
        self.stopping.set()

    def run(self):
        """Consume until asked to stop, starting again whenever the broker ends a session."""
        told_wrong_queue = False
        while not self.stopping.is_set():
            connection = connect(self.parameters, self.stopping)
            if connection is None:
                return
            try:
                self.consume(connection)
            except AMQPChannelError as exc:
                if is_wrong_queue_type(exc):
                    if not told_wrong_queue:
                        log.warning(self.wrong_queue_type(exc))
                    told_wrong_queue = True
                    self.stopping.wait(WRONG_QUEUE_RETRY_SECONDS)
                else:
                    log.warning("[!] %s lost its channel (%s); consuming again", self.name, short_error(exc))
            except ConsumerCancelled as why:
                log.warning("[!] %s: the broker cancelled its consumer (%s); consuming again", self.name, why)
            except AMQPConnectionError as exc:
                log.warning("[!] %s lost its broker connection (%s); reconnecting", self.name, short_error(exc))
            finally:
                if connection.is_open:
                    connection.close()  # unacknowledged tasks go back to the queue

    def consume(self, connection):
        """One session: declare, consume until stopped, then end cleanly."""
        channel = connection.channel()
        declare_queues(channel, dead_letters=len(self.parameters) == 1 or not self.sessions)
        self.sessions += 1
        channel.basic_qos(prefetch_count=self.config.prefetch)
        records = connection.channel()
        records.tx_select()
        session = Session(connection, channel, records, self.config.prefetch, worker=self.name, events=self.events)
        deliveries = queue.Queue()
        work = threading.Thread(target=self.work_loop, args=(session, deliveries), daemon=True)
        work.start()
        # The worker's name as consumer tag: the management UI lists consumers by it.
        channel.basic_consume(QUEUE, functools.partial(self.on_delivery, session, deliveries), consumer_tag=self.name)
        self.events.open(connection, self.config.prefetch)
        prefetch = self.config.prefetch or "unlimited"
        print(f"[*] {self.name} waiting for tasks on {QUEUE} (prefetch {prefetch}). To exit press CTRL+C", flush=True)
        try:
            self.tick(connection, channel, session)
            channel.start_consuming()  # until stop_consuming, or the broker cancels the consumer
            if not self.stopping.is_set():
                why = self.why_cancelled(connection, holding=bool(session.unsettled))
                session.taken_back = why  # nothing it holds may be acknowledged now
                raise ConsumerCancelled(why)
            deliveries.put(_END)
            self.finish_task_in_hand(connection, work)
        finally:
            session.over.set()
            deliveries.put(_END)
            work.join(timeout=1)  # let it say what it gives up
            if connection.is_open:
                with contextlib.suppress(AMQPError):  # the records channel may be gone too
                    session.settle()  # the record of a task handed back
            self.events.leaving()

    def tick(self, connection, channel, session):
        """Every TICK_SECONDS on the connection's thread: stop if asked, settle, sum up quick tasks."""
        if self.stopping.is_set():
            channel.stop_consuming()  # the signal handler only sets the event: pika is not re-entrant
            return
        session.settle()
        self.events.flush()
        if summary := self.quick_tasks.summary():
            print(summary, flush=True)
        connection.call_later(TICK_SECONDS, lambda: self.tick(connection, channel, session))

    @staticmethod
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
            text = read_task(body, self.config.max_dots)
        except PoisonTask as poison:
            line = f"[!] Rejected {body[:60]!r} ({self.name}): {poison}; to the dead-letter queue"
            session.tell(properties.reply_to, {"event": "rejected", **record, "reason": str(poison)},
                         method.delivery_tag, line)  # fmt: skip
            return
        seconds = work_seconds(text, self.config.seconds_per_dot)
        if seconds:
            self.events.received(record)
            deliveries.put(Task(method.delivery_tag, properties.reply_to, text, seconds, record))
        else:
            record["finished"] = record["started"]
            line = self.quick_tasks.line(text)
            session.tell(properties.reply_to, {"event": "done", **record}, method.delivery_tag, line)

    def work_loop(self, session, deliveries):
        """Runs in the work thread: one task at a time, in delivery order."""
        while True:
            task = deliveries.get()
            if task is _END or session.over.is_set():
                return
            if self.stopping.is_set():
                continue  # not started: it goes back to the queue when the connection closes
            try:
                if not self.work(session, task):
                    return
            except AMQPError:  # the session ended meanwhile: the broker redelivers the task
                return

    def work(self, session, task):
        """Do one task's work, then have it acknowledged. False if the session ended first."""
        record = task.record
        record["started"] = time.time()
        again = ", redelivered" if record["redelivered"] else ""
        print(f"[x] Received {task.text!r} ({self.name}{again})", flush=True)
        session.tell(task.reply_to, {"event": "started", **record})  # progress for send.sh --wait
        if session.over.wait(task.seconds):
            if self.stopping.is_set():
                why = "stopped before it was done"
            elif session.taken_back:
                why = f"the broker took it back ({session.taken_back})"
            else:
                why = "its delivery was lost with the channel"
            print(f"[!] Handed back {task.text!r} ({self.name}): {why}", flush=True)
            session.add(task.reply_to, {"event": "cut", **record, "reason": why})  # for --wait and the dashboard
            return False
        record["finished"] = time.time()
        line = done_line(self.name, task.text, record["finished"] - record["started"])
        session.tell(task.reply_to, {"event": "done", **record}, task.delivery_tag, line)
        return True

    def wrong_queue_type(self, exc):
        return (
            f"[!] {self.name}: {QUEUE} exists with another queue type ({exc.reply_text.split(': ', 1)[-1]}), "
            f"left by an old broker volume or a client that declared it first. Fix: `docker compose down -v` "
            f"(drops queued tasks), or delete {QUEUE} in the management UI; "
            f"retrying every {WRONG_QUEUE_RETRY_SECONDS} s"
        )


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)  # its errors are reported here, in words
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
    print(f"[*] {worker.name} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
