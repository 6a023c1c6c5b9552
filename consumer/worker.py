"""A work-queue worker: RabbitMQ tutorial two's worker.py, grown up in place.

As in the tutorial, in the same order: connect, declare task_queue, set the
prefetch (basic_qos), consume (basic_consume) with a callback that prints
"[x] Received", does the work (SECONDS_PER_DOT seconds per dot in the task),
prints "[x] Done" and acknowledges the task (basic_ack).

Grown up: the work runs in a thread of its own, one task at a time, while the
connection's thread keeps the connection alive (heartbeats); the work thread hands
the ack back with add_callback_threadsafe, as pika's basic_consumer_threaded.py
does (a task with no work, and none before it, is done in the callback itself).
Beside the ack, the task's record for `send.sh --wait` (task_records.py, committed
before the ack) and its event for the dashboard (events.py). broker.py connects
again whatever the broker does. SIGTERM (`docker compose stop`) lets the task in
hand finish within STOP_GRACE_SECONDS; a task still running then is handed back.
"""

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from pika.exceptions import AMQPError

from broker import (
    ConsumerCancelled,
    LoginRefused,
    Reconnecting,
    connect,
    connection_parameters,
    why_cancelled,
    worker_name,
)
from events import Events
from lab import settings as lab_settings
from lab.tasks import PoisonTask, read_task
from lab.topology import QUEUE, QUEUE_ARGUMENTS
from task_records import Records

CLOSE_MARGIN_SECONDS = 1.5  # of the stop grace period: for closing the connection before Docker kills us
TICK_SECONDS = 0.5  # how often the connection's thread looks at stop requests and sums up quick tasks


def consume(connection, settings, worker, stopping):
    """One connection's session: the tutorial's worker."""
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    session = Session(connection, settings, worker, stopping)

    channel.basic_qos(prefetch_count=settings.prefetch)
    # The worker's name as consumer tag: the management UI lists consumers by it.
    channel.basic_consume(queue=QUEUE, on_message_callback=session.callback, consumer_tag=worker)
    prefetch = settings.prefetch or "unlimited"
    print(f"[*] {worker} waiting for tasks on {QUEUE} (prefetch {prefetch}); it runs until stopped. "
          "To exit press CTRL+C", flush=True)  # fmt: skip
    session.tick(channel)
    try:
        channel.start_consuming()  # until stop_consuming (tick), or the broker cancels the consumer
        if not stopping.is_set():
            session.why_over = "its consumer was cancelled"  # nothing it holds may be acknowledged now
            session.why_over = why_cancelled(connection, holding=session.holding > 0)
            raise ConsumerCancelled(session.why_over)
        session.finish_task_in_hand()
    finally:
        session.end()


class Session:
    """One connection's life: the consumer's callback on the connection's thread, the
    task's work in the work thread, the ack back on the connection's thread."""

    def __init__(self, connection, settings, worker, stopping):
        self.connection, self.settings, self.worker, self.stopping = connection, settings, worker, stopping
        self.records = Records(connection, worker)  # for send.sh --wait
        self.events = Events(connection, worker, settings.prefetch)  # for the dashboard
        self.work = ThreadPoolExecutor(max_workers=1)  # one task at a time, in delivery order
        self.last_task = Future()
        self.last_task.set_result(None)
        self.over = threading.Event()  # the tasks it holds go back to task_queue
        self.why_over = None  # set when the broker took them back
        self.holding = 0  # deliveries not yet acknowledged or rejected
        self.lines = QuickTaskLines(worker)

    def callback(self, ch, method, properties, body):
        """A task delivered, on the connection's thread: its work goes to the work thread, in turn."""
        self.holding += 1
        record = {
            "worker": self.worker,
            "task": body.decode("utf-8", errors="replace"),
            "message_id": properties.message_id,
            "batch": properties.correlation_id,
            "redelivered": method.redelivered,
            "started": time.time(),
            "prefetch": self.settings.prefetch,  # the page shows the prefetch in force, live and in replays
        }
        try:
            text = read_task(body, self.settings.max_dots)
        except PoisonTask as poison:
            print(f"[!] Rejected {body[:60]!r} ({self.worker}): {poison}; to the dead-letter queue", flush=True)
            self.acknowledge(ch, method, properties.reply_to, {"event": "rejected", **record, "reason": str(poison)})
            return
        if self.work_seconds(text):
            record["received"] = record["started"]  # from now until it starts it waits in the buffer
            self.events.tell("received", record)
        elif self.last_task.done():  # no work, and no task before it: done here, as in the tutorial's callback
            self.do_task(ch, method, properties, text, record, then=lambda function, *args: function(*args))
            return
        self.last_task = self.work.submit(
            self.do_task, ch, method, properties, text, record, then=self.in_connection_thread
        )

    def do_task(self, ch, method, properties, text, record, *, then):
        """The tutorial's "[x] Received", the work, "[x] Done", then (`then`: on the connection's thread) the ack."""
        if self.over.is_set() or self.stopping.is_set():
            return  # not started: it goes back to the queue when the connection closes
        seconds = self.work_seconds(text)
        record["started"] = time.time()
        again = ", redelivered" if record["redelivered"] else ""
        if seconds:
            then(self.tell, properties.reply_to, {"event": "started", **record})
        self.lines.received(f"[x] Received {text!r} ({self.worker}{again})", quick=not seconds)
        if self.over.wait(seconds):
            self.hand_back(properties.reply_to, record)
            return
        record["finished"] = time.time() if seconds else record["started"]
        self.lines.done(f"[x] Done {text!r} ({self.worker}, {record['finished'] - record['started']:.1f} s)")
        then(self.acknowledge, ch, method, properties.reply_to, {"event": "done", **record})

    def acknowledge(self, ch, method, reply_to, record):
        """On the connection's thread: the task's record, the tutorial's ack, the task's event."""
        if self.why_over or not ch.is_open:
            self.not_acknowledged(reply_to, record)
            return
        self.records.send(reply_to, record)  # committed before the ack
        if record["event"] == "rejected":
            ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)  # to the dead-letter queue (policy)
        else:
            ch.basic_ack(delivery_tag=method.delivery_tag)
        self.events.tell(record["event"], record)
        self.holding -= 1

    def tell(self, reply_to, record):
        """On the connection's thread: a record and its event, with no ack."""
        self.records.send(reply_to, record)
        self.events.tell(record["event"], record)

    def in_connection_thread(self, function, *args):
        with contextlib.suppress(AMQPError):  # the connection is gone: the broker gives the task to another
            self.connection.add_callback_threadsafe(functools.partial(function, *args))

    def hand_back(self, reply_to, record):
        """In the work thread: the session ended during the task's work."""
        if self.stopping.is_set():
            why = "stopped before it was done"
        elif self.why_over:
            why = f"the broker took it back ({self.why_over})"
        else:
            why = "its delivery was lost with the channel"
        print(f"[!] Handed back {record['task']!r} ({self.worker}): {why}", flush=True)
        self.in_connection_thread(self.tell, reply_to, {"event": "cut", **record, "reason": why})

    def not_acknowledged(self, reply_to, record):
        why = f"the broker took it back first ({self.why_over or 'its channel closed'})"
        print(f"[!] Not acknowledged {record['task']!r} ({self.worker}): {why}; "
              "it gives the task to another worker", flush=True)  # fmt: skip
        with contextlib.suppress(AMQPError):
            self.tell(reply_to, {**record, "event": "cut", "reason": f"not acknowledged: {why}"})

    def work_seconds(self, text):
        return text.count(".") * self.settings.seconds_per_dot

    def tick(self, channel):
        """Every TICK_SECONDS on the connection's thread: stop if asked, sum up quick tasks."""
        if self.stopping.is_set():
            channel.stop_consuming()  # the signal handler only sets the event: pika is not re-entrant
            return
        self.events.tick()
        self.lines.summary()
        self.connection.call_later(TICK_SECONDS, lambda: self.tick(channel))

    def finish_task_in_hand(self):
        """Let the task in hand finish within the stop grace period, acknowledging it."""
        deadline = time.monotonic() + max(0.0, self.settings.stop_grace_seconds - CLOSE_MARGIN_SECONDS)
        while not self.last_task.done() and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.2)

    def end(self):
        """The tasks not done go back to task_queue; the records of those cut short go out."""
        self.over.set()
        self.work.shutdown(wait=True, cancel_futures=True)  # the task in hand stops at once
        if self.connection.is_open:
            with contextlib.suppress(AMQPError):  # the channels may be gone too
                self.connection.process_data_events(time_limit=0)  # the last acks and records
                self.events.leaving()
        self.lines.summary(now=True)


class QuickTaskLines:
    """The tutorial's lines, from the work thread; for tasks with no work, those of the
    first LINES_PER_SECOND tasks each second, the others summed up in one line a
    second: such tasks come by the thousand (`send.sh 100000 --dots 0`), and a log
    line costs a worker (and Docker) more than the task itself."""

    LINES_PER_SECOND = 10

    def __init__(self, worker):
        self.worker, self.lock = worker, threading.Lock()
        self.second_started, self.shown, self.folded, self.showing = time.monotonic(), 0, 0, True

    def received(self, line, quick):
        with self.lock:
            self.showing = not quick or self.shown < self.LINES_PER_SECOND
            self.shown += quick and self.showing
            self.folded += not self.showing
        if self.showing:
            print(line, flush=True)

    def done(self, line):
        if self.showing:
            print(line, flush=True)

    def summary(self, now=False):
        """Once a second at most: the line for the tasks counted, if any."""
        with self.lock:
            if not now and time.monotonic() - self.second_started < 1:
                return
            folded, self.folded, self.shown, self.second_started = self.folded, 0, 0, time.monotonic()
        if folded:
            print(f"[x] ... and {folded:,} more tasks with no work done ({self.worker})", flush=True)


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)  # its errors are reported here, in words
    settings = lab_settings.load()
    worker = os.environ.get("WORKER_NAME") or worker_name()
    stopping = threading.Event()

    def request_stop(signum, _frame):
        if not stopping.is_set():
            print(f"[*] {worker}: {signal.Signals(signum).name} received, stopping", flush=True)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    parameters, reconnecting = connection_parameters(settings, worker), Reconnecting(worker, stopping)
    try:
        while connection := connect(parameters, stopping):  # tenacity's retry around it; None once stopping
            with reconnecting.session(connection):
                consume(connection, settings, worker, stopping)
            if stopping.is_set():
                break
    except LoginRefused as exc:
        print(f"worker: the broker refused the login of {settings.user!r} ({exc}). Check RABBITMQ_DEFAULT_USER/"
              "RABBITMQ_DEFAULT_PASS in .env; the broker keeps the user of its first start (`docker compose "
              "down -v` resets it).", file=sys.stderr)  # fmt: skip
        return 1
    print(f"[*] {worker} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
