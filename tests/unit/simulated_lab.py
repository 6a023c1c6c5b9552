"""A broker and students' workers simulated in real time, for the checker's unit tests:
the broker hands task_queue's tasks to its consumers round-robin within each one's
prefetch, as RabbitMQ does; each worker starts the tasks it was handed in order,
prints a line naming each (in its own wording), works `seconds_per_dot` a dot and
acknowledges after the work, before it, or never (auto-ack). Killing a worker hands
its unacknowledged tasks back. The checks drive it through the same calls they make
of the real broker (counts, consumers, unacknowledged, publish, queues, restart) and
of the real copies (start, alive, signal, named, lines), so a verdict here comes from
the same code as on the lab; `latency` is how long a rabbitmqctl answer takes."""

import signal
import threading
import time
from dataclasses import dataclass, field

from checker.copies import naming


@dataclass
class Worker:
    """How a student's worker behaves."""

    prefetch: int = 1  # 0: no limit
    ack: str = "after"  # "after" the work, "before" it, "auto" (auto_ack=True), "auto+ack" (both: crashes)
    seconds_per_dot: float = 0.1
    says: str = " [x] Received {task}"
    hangs_after: int | None = None  # tasks done, then it stops acknowledging for good
    refuses: str | None = None  # ends at once with this line (a refused declaration, a refused connection)
    on_sigterm: str = "dies"  # "dies" (no handler) or "finishes" (finishes its task, then ends)
    consumers: int = 1  # consumers it opens on task_queue, each on a channel of its own (the first gets the tasks)


class FakeProcess:
    def __init__(self, copy):
        self.copy = copy
        self.pid = id(copy)

    @property
    def returncode(self):
        return None if self.copy.alive() else self.copy.status

    def wait(self, _timeout=None):
        return self.returncode

    def poll(self):
        return self.returncode


@dataclass
class SimCopy:
    name: str
    lab: "SimulatedLab"
    worker: Worker
    channel: str
    lines: list = field(default_factory=list)
    delivered: list = field(default_factory=list)  # [task, acked] in the order handed over
    current: list | None = None
    finish_at: float | None = None
    done: int = 0
    running: bool = True
    stopping: bool = False
    status: int | None = None

    def __post_init__(self):
        self.process = FakeProcess(self)

    # The calls the checks make of a copy (checker.copies.Copy)
    def alive(self):
        self.lab.advance()
        return self.running

    def signal(self, number):
        with self.lab.lock:
            self.lab.advance()
            if number == signal.SIGTERM and self.worker.on_sigterm == "finishes" and self.current:
                self.stopping = True
            elif self.running:
                self.lab.end(self, -number)
        return time.time()

    def end(self, grace=0):
        self.signal(signal.SIGKILL)

    def named(self, task):
        return [at for at, line in list(self.lines) if naming(task).search(line)]

    def tail(self, count=3):
        return " | ".join(line for _at, line in self.lines[-count:]) or "(no output)"

    def output(self):
        return "\n".join(line for _at, line in self.lines)

    def attempts(self, _tasks):
        return []

    def unacked(self):
        return sum(not acked for _task, acked in self.delivered)


class SimulatedLab:
    """The broker (its task_queue and consumers) and the copies of one worker."""

    port = 5672

    def __init__(self, worker, latency=0.0, durable=True):
        self.worker, self.latency, self.durable = worker, latency, durable
        self.ready = []  # task texts, first out first
        self.all = []  # the copies, as checker.copies.Copies keeps them
        self.command = ["python", "worker.py"]
        self.lock = threading.RLock()
        self.turn = 0
        self.ctl_calls = 0

    # The copies (checker.copies.Copies)
    def start(self):
        with self.lock:
            copy = SimCopy(f"copy-{len(self.all) + 1}", self, self.worker, f"<0.{len(self.all) + 100}.0>")
            self.all.append(copy)
            if self.worker.refuses:
                copy.lines.append((time.time(), self.worker.refuses))
                copy.running, copy.status = False, 1
            return copy

    def running(self):
        return [copy for copy in self.all if copy.alive()]

    def end_all(self):
        for copy in self.all:
            copy.end()
        return {}

    def first_named(self, task):
        seen = [(moment, copy) for copy in self.all for moment in copy.named(task)[:1]]
        return min(seen, key=lambda item: item[0], default=None)

    # The broker (checker.broker.Broker)
    def publish(self, messages):
        with self.lock:
            self.advance()
            self.ready.extend(text for _id, text in messages)
            self.advance()

    def counts(self):
        with self.lock:
            self.advance()
            return len(self.ready), sum(self.worker.consumers for copy in self.all if copy.running)

    def consumers(self):
        with self.lock:
            self.advance()
            ack_required = not self.worker.ack.startswith("auto")
            return [
                {"channel_pid": f"{c.channel}{n or ''}", "consumer_tag": f"{c.name}.{n}", "ack_required": ack_required,
                 "prefetch_count": self.worker.prefetch}
                for c in self.all if c.running for n in range(self.worker.consumers)
            ]  # fmt: skip

    def unacknowledged(self, channels):
        """As rabbitmqctl answers: the state when asked, after `latency` seconds."""
        with self.lock:
            self.advance()
            self.ctl_calls += 1
            answer = {c.channel: c.unacked() for c in self.all if c.running and c.channel in channels}
            answer |= {f"{c.channel}{n}": 0 for c in self.all if c.running for n in range(1, self.worker.consumers)}
        time.sleep(self.latency)
        return answer

    def queues(self):
        return {"task_queue": {"durable": self.durable, "type": "quorum" if self.durable else "classic"}}

    def restart(self, _timeout):
        with self.lock:
            for copy in self.all:
                if copy.running:
                    copy.lines.append(
                        (time.time(), "pika.exceptions.ConnectionClosedByBroker: (320, CONNECTION_FORCED)")
                    )
                    self.end(copy, 1)
        return True

    # The simulation
    def end(self, copy, status):
        """The copy ends: the broker takes back what it did not acknowledge, first in line."""
        copy.running, copy.status = False, status
        back = [task for task, acked in copy.delivered if not acked]
        self.ready[:0] = back
        copy.delivered, copy.current = [], None

    def advance(self):
        """Everything that happened up to now: handing out, starting, finishing, acknowledging."""
        with self.lock:
            now = time.time()
            while True:
                self.dispatch(now)
                working = [c for c in self.all if c.running and c.current and c.finish_at is not None]
                due = min(working, key=lambda c: c.finish_at, default=None)
                if due is None or due.finish_at > now:
                    return
                self.finish(due, due.finish_at)

    def capacity(self, copy):
        if self.worker.ack.startswith("auto") or self.worker.prefetch == 0:
            return True
        return copy.unacked() < self.worker.prefetch

    def dispatch(self, now):
        consumers = [c for c in self.all if c.running and not c.stopping]
        while self.ready and consumers:
            free = [c for c in consumers[self.turn % len(consumers) :] + consumers if self.capacity(c)]
            if not free:
                break
            copy = free[0]
            self.turn = consumers.index(copy) + 1
            copy.delivered.append([self.ready.pop(0), self.worker.ack.startswith("auto")])
        for copy in consumers:
            if copy.current is None:
                self.begin(copy, now)

    def begin(self, copy, now):
        waiting = [entry for entry in copy.delivered if entry is not copy.current]
        if not waiting:
            return
        entry = waiting[0]
        copy.current = entry
        copy.lines.append((now, self.worker.says.format(task=entry[0])))
        if self.worker.ack == "before":
            entry[1] = True
        hangs = self.worker.hangs_after is not None and copy.done >= self.worker.hangs_after
        copy.finish_at = None if hangs else now + entry[0].count(".") * self.worker.seconds_per_dot

    def finish(self, copy, at):
        entry = copy.current
        copy.lines.append((at, " [x] Done"))
        if self.worker.ack == "auto+ack":
            copy.lines.append((at, "pika.exceptions.ChannelClosedByBroker: (406, 'PRECONDITION_FAILED - unknown "
                                   "delivery tag 1')"))  # fmt: skip
            self.end(copy, 1)
            return
        entry[1] = True
        copy.delivered.remove(entry)
        copy.current, copy.finish_at = None, None
        copy.done += 1
        if copy.stopping:
            self.end(copy, 0)
