"""What a task is to a worker: its text and how much work it asks for (what makes
it poison is in lab/tasks.py: dead-letters.sh says why with the same rules)."""

import time
from dataclasses import dataclass


def work_seconds(text, seconds_per_dot):
    return text.count(".") * seconds_per_dot


@dataclass
class Task:
    """A delivered task that takes time, handed to the work thread."""

    delivery_tag: int
    reply_to: str | None  # the queue for its records, if anyone waits for them
    text: str
    seconds: float
    record: dict


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
