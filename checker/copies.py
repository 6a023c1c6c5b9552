"""The student's worker, run as they run it: each copy of their command in a
process group of its own (so that ending it ends whatever it started), its
output read line by line with the moment each line came."""

import os
import re
import signal
import subprocess
import threading
import time

RECEIVED = re.compile(r"\[x\] Received:?\s*(.*)")
DONE = re.compile(r"\[x\] Done")
QUOTED = re.compile(r"""^b?(['"])(.*)\1$""")  # print(body) shows b'Task 1.'


def task_text(shown):
    """The task's text as a worker printed it: 'Task 1.', b'Task 1.' or Task 1."""
    shown = shown.strip()
    quoted = QUOTED.match(shown)
    return quoted.group(2) if quoted else shown


class Copy:
    """One copy of the command: `name`, its process, and what it printed."""

    def __init__(self, name, command, cwd, env):
        self.name = name
        self.lines = []  # (epoch seconds, line)
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.process.stdout:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip()))

    def alive(self):
        return self.process.poll() is None

    def signal(self, number):
        """Send `number` to the copy's whole process group; the moment it was sent."""
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass
        return time.time()

    def end(self, grace=3):
        """SIGTERM, then SIGKILL after `grace` seconds; whatever it started goes with it."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.signal(signal.SIGKILL)  # its group, even when the copy itself has ended
        self.process.wait()
        self.reader.join(2)

    def attempts(self):
        """Each task the copy said it received: {task, started, finished (None if it never said Done)}.
        A worker prints "[x] Done" without the task: it closes the latest attempt still open."""
        attempts = []
        for moment, line in list(self.lines):
            if received := RECEIVED.search(line):
                attempts.append({"task": task_text(received.group(1)), "started": moment, "finished": None})
            elif DONE.search(line) and attempts and attempts[-1]["finished"] is None:
                attempts[-1]["finished"] = moment
        return attempts

    def received(self, task):
        return [a for a in self.attempts() if a["task"] == task]

    def done(self, task):
        return [a for a in self.received(task) if a["finished"] is not None]

    def tail(self, count=3):
        """Its last lines of output, as one line for a report."""
        lines = [line.strip() for _moment, line in self.lines[-count:] if line.strip()]
        return " | ".join(lines) or "(no output)"


class Copies:
    """The copies running now and those ended, all ended by end_all()."""

    def __init__(self, command, cwd, env):
        self.command, self.cwd, self.env = command, cwd, env
        self.all = []

    def start(self):
        copy = Copy(f"copy-{len(self.all) + 1}", self.command, self.cwd, self.env)
        self.all.append(copy)
        return copy

    def running(self):
        return [copy for copy in self.all if copy.alive()]

    def end_all(self):
        for copy in self.all:
            copy.end()

    def holder(self, task):
        """The running copy that received `task` and has not said it is done, or None."""
        for copy in self.running():
            if any(a["finished"] is None for a in copy.received(task)):
                return copy
        return None

    def done_by(self, task):
        return [copy for copy in self.all if copy.done(task)]
