"""A work-queue worker: RabbitMQ tutorial two's worker.py, grown up.

As in the tutorial: connect, declare the durable quorum queue `task_queue`, set
the prefetch (basic_qos), consume; for each task print "[x] Received", do one
unit of work (SECONDS_PER_DOT seconds) per dot in its text, print "[x] Done",
and only then acknowledge it (basic_ack): a task held by a worker that dies
goes to another worker.

Grown up: the work runs in its own thread while the connection's thread keeps
the connection alive (heartbeats) and settles finished tasks (settlement.py:
the record for `send.sh --wait`, then the basic_ack), as pika's
basic_consumer_threaded example does; a task with no work is settled at once.
Each task is also told to the live dashboard (events.py). Around the worker,
supervisor.py keeps it consuming whatever the broker does, as pika's
ReconnectingExampleConsumer wraps its ExampleConsumer.
"""

import contextlib
import functools
import logging
import sys
import threading
import time

from pika.exceptions import AMQPError

import supervisor
import threads
from broker import ConsumerCancelled, connection_parameters, declare_queues, why_cancelled
from events import Events
from lab.tasks import PoisonTask, read_task
from lab.topology import QUEUE
from settings import Config, ConfigError
from settlement import Session
from tasks import QuickTasksLog, Task, done_line, work_seconds


class Worker:
    def __init__(self, config):
        self.config = config
        self.name = config.worker_name
        self.parameters = connection_parameters(config)
        self.stopping = threading.Event()
        self.quick_tasks = QuickTasksLog(self.name)
        self.sessions = 0
        self.events = Events(self.name)  # for the dashboard

    def consume(self, connection):
        """One session: declare, consume until stopped, then end cleanly."""
        channel = connection.channel()
        declare_queues(channel, dead_letters=len(self.parameters) == 1 or not self.sessions)
        self.sessions += 1
        channel.basic_qos(prefetch_count=self.config.prefetch)
        records = connection.channel()
        records.tx_select()
        session = Session(connection, channel, records, self.config.prefetch, worker=self.name, events=self.events)
        deliveries, work = threads.start_work_thread(self, session)
        # The worker's name as consumer tag: the management UI lists consumers by it.
        channel.basic_consume(QUEUE, functools.partial(self.on_delivery, session, deliveries), consumer_tag=self.name)
        self.events.open(connection, self.config.prefetch)
        prefetch = self.config.prefetch or "unlimited"
        print(f"[*] {self.name} waiting for tasks on {QUEUE} (prefetch {prefetch}). To exit press CTRL+C", flush=True)
        try:
            threads.tick(self, connection, channel, session)
            channel.start_consuming()  # until stop_consuming, or the broker cancels the consumer
            if not self.stopping.is_set():
                why = why_cancelled(connection, holding=bool(session.unsettled))
                session.taken_back = why  # nothing it holds may be acknowledged now
                raise ConsumerCancelled(why)
            deliveries.put(threads.END)
            threads.finish_task_in_hand(self, connection, work)
        finally:
            session.over.set()
            deliveries.put(threads.END)
            work.join(timeout=1)  # let it say what it gives up
            if connection.is_open:
                with contextlib.suppress(AMQPError):  # the records channel may be gone too
                    session.settle()  # the record of a task handed back
            self.events.leaving()

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
            "prefetch": self.config.prefetch,  # the page shows the prefetch in force, live and in replays
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
            record["received"] = record["started"]  # from now until it starts it waits in the buffer
            self.events.received(record)
            deliveries.put(Task(method.delivery_tag, properties.reply_to, text, seconds, record))
        else:
            record["finished"] = record["started"]
            line = self.quick_tasks.line(text)
            session.tell(properties.reply_to, {"event": "done", **record}, method.delivery_tag, line)

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
        # The tutorial's ch.basic_ack(delivery_tag=...), once the task's record is committed:
        # the connection's thread sends it (settlement.Session.acknowledge) and prints "[x] Done".
        session.tell(task.reply_to, {"event": "done", **record}, task.delivery_tag, line)
        return True


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)  # its errors are reported here, in words
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    return supervisor.run(Worker(config))


if __name__ == "__main__":
    sys.exit(main())
