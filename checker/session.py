"""One check run: the broker, the copies of the student's worker, the tasks the
check sent (each with a message id of the run's batch) and the faults it caused."""

import time
import uuid

from pika.exceptions import AMQPError

from lab.schema import message_id

from .broker import BrokerError

ATTACH_SECONDS = 20
POLL_SECONDS = 0.3


def wait_until(condition, seconds, interval=POLL_SECONDS):
    """condition() until it is true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class NotAttached(Exception):
    """The copies did not all consume task_queue (the reason, one line)."""


class Session:
    def __init__(self, broker, copies, size):
        self.broker, self.copies, self.size = broker, copies, size
        self.batch = uuid.uuid4().hex[:12]
        self.sent = {}  # task text -> message id
        self.marks = []  # {"at", "label"}: faults, for the timeline
        self.consumers = []  # task_queue's consumers when the copies last attached
        self.current = []  # the copies that should be consuming

    def send(self, label, dots_per_task):
        """Publish tasks "<label> <k>" with that many dots each; their texts."""
        tasks = []
        for number, dots in enumerate(dots_per_task, start=1):
            text = f"{label} {number}" + "." * dots
            self.sent[text] = message_id(self.batch, len(self.sent) + 1)
            tasks.append(text)
        self.broker.publish([(self.sent[text], text) for text in tasks])
        return tasks

    def mark(self, label, at=None):
        self.marks.append({"at": at or time.time(), "label": label})

    def attach(self):
        """Start copies until `size` run, and wait until as many consume task_queue;
        NotAttached says why not (a copy ended: its last lines)."""
        self.current = self.copies.running()
        while len(self.current) < self.size:
            try:
                self.current.append(self.copies.start())
            except OSError as exc:  # no such program, not executable
                raise NotAttached(f"cannot run {self.copies.command[0]!r}: {exc.strerror or exc}") from exc

        def attached():
            ended = [copy for copy in self.current if not copy.alive()]
            if ended:
                copy = ended[0]
                raise NotAttached(f"{copy.name} ended (exit status {copy.process.returncode}): {copy.tail()}")
            return self.broker.counts()[1] == self.size

        try:
            if not wait_until(attached, ATTACH_SECONDS):
                consuming = self.broker.counts()[1]
                raise NotAttached(
                    f"{consuming} of {self.size} copies consume task_queue after {ATTACH_SECONDS} s "
                    f"(does your worker consume task_queue on localhost:{self.broker.port}?); "
                    f"their output: {self.current[-1].tail()}"
                )
            self.consumers = self.broker.consumers()
        except (AMQPError, OSError, BrokerError) as exc:
            raise NotAttached(f"the broker did not answer: {exc}") from exc

    def channels(self):
        """The channels the copies consume task_queue on (when they last attached)."""
        return {consumer["channel_pid"] for consumer in self.consumers}

    def held(self):
        """(tasks ready in task_queue, tasks the copies hold unacknowledged): exact figures
        (a quorum queue's own unacknowledged count, in list_queues, can lag by seconds)."""
        return self.broker.counts()[0], sum(self.broker.unacknowledged(self.channels()).values())

    def task_queue_empty(self):
        return self.held() == (0, 0)

    def held_until_empty(self, seconds):
        """held() until task_queue is empty or `seconds` pass: the last reading (each reading
        runs rabbitmqctl, an Erlang VM start in the broker's container)."""
        deadline = time.monotonic() + seconds
        while (held := self.held()) != (0, 0) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return held

    def auto_ack(self):
        return any(not consumer["ack_required"] for consumer in self.consumers)
