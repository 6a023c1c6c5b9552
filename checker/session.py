"""One check run: the broker, the copies of the student's worker, the tasks the
check sent (each with a message id of the run's batch), the faults it caused, and
what the broker showed of them: which copy's channels hold how many tasks
unacknowledged (a sample), each channel traced to the copy that opened it."""

import time
import uuid
from dataclasses import dataclass, field

from pika.exceptions import AMQPError

from lab.schema import message_id

from .broker import BrokerError

ATTACH_SECONDS = 20
SETTLE_SECONDS = 0.5  # a copy that opens a second consumer does so within this
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


@dataclass
class Sample:
    """What the broker showed at one moment: tasks ready in task_queue, and how many each
    running copy holds unacknowledged on its channels."""

    at: float
    ready: int
    held: dict = field(default_factory=dict)  # copy name -> unacknowledged

    def idle(self):
        return [name for name, count in self.held.items() if count == 0]

    def holding(self):
        return {name: count for name, count in self.held.items() if count}

    def empty(self):
        return self.ready == 0 and not self.holding()


class Session:
    def __init__(self, broker, copies, size):
        self.broker, self.copies, self.size = broker, copies, size
        self.batch = uuid.uuid4().hex[:12]
        self.sent = {}  # task text -> message id
        self.marks = []  # {"at", "label"}: faults, for the timeline
        self.consumers = []  # task_queue's consumers, as last read
        self.owner = {}  # channel pid -> the copy that opened it
        self.current = []  # the copies that should be consuming
        self.samples = []

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
        """Start copies, one at a time, until `size` run; each is waited for until task_queue
        has a consumer more, and the channels that appeared are its own (however many it
        opens). NotAttached says why not (a copy ended: its last lines)."""
        self.current = self.copies.running()
        try:
            while len(self.current) < self.size:
                self._start_one()
        except (AMQPError, OSError, BrokerError) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise NotAttached(f"cannot run {self.copies.command[0]!r}: {exc.strerror or exc}") from exc
            raise NotAttached(f"the broker did not answer: {exc}") from exc

    def _start_one(self):
        before = self.broker.counts()[1]
        copy = self.copies.start()
        self.current.append(copy)

        def attached():
            if not copy.alive():
                raise NotAttached(f"{copy.name} ended (exit status {copy.process.returncode}): {copy.tail()}")
            return self.broker.counts()[1] > before

        if not wait_until(attached, ATTACH_SECONDS):
            raise NotAttached(
                f"{copy.name} did not consume task_queue within {ATTACH_SECONDS} s (the broker shows no new consumer: "
                f"does your worker call basic_consume on task_queue, on localhost:{self.broker.port}?); "
                f"its output: {copy.tail()}"
            )
        time.sleep(SETTLE_SECONDS)
        self.consumers = self.broker.consumers()
        for consumer in self.consumers:
            self.owner.setdefault(consumer["channel_pid"], copy)

    def prefetch(self):
        """{copy name: its consumers' prefetch limits}."""
        limits = {}
        for consumer in self.consumers:
            if copy := self.owner.get(consumer["channel_pid"]):
                limits.setdefault(copy.name, set()).add(consumer["prefetch_count"])
        return limits

    def auto_ack(self):
        return any(not consumer["ack_required"] for consumer in self.consumers)

    def sample(self):
        """One reading of the broker (one rabbitmqctl call): a Sample of the running copies."""
        unacked = self.broker.unacknowledged(set(self.owner))
        ready = self.broker.counts()[0]
        held = {copy.name: 0 for copy in self.current if copy.alive()}
        for pid, count in unacked.items():
            copy = self.owner[pid]
            if copy.name in held:
                held[copy.name] += count
        reading = Sample(time.time(), ready, held)
        self.samples.append(reading)
        return reading

    def sample_until(self, condition, seconds):
        """Samples until condition(sample) or `seconds` pass: the last sample."""
        deadline = time.monotonic() + seconds
        while True:
            reading = self.sample()
            if condition(reading) or time.monotonic() >= deadline:
                return reading
            time.sleep(POLL_SECONDS)
