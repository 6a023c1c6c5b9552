"""The student's worker, run as they run it: each copy of their command in a
process group of its own (so that ending it ends whatever it started), its
output read line by line with the moment each line came. Every process a copy
starts inherits RUN_MARK in its environment, so that one that left the copy's
process group (setsid, a daemon) is found and ended too (Linux: /proc)."""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

RUN_MARK = "CHECK_WORKER_RUN"
MAX_LINES = 5000  # a copy's output kept, at most (a worker printing without end is not stored whole)
MAX_LINE = 2000
DONE = re.compile(r"\bdone\b", re.IGNORECASE)  # the tutorials' "[x] Done" (Go: "Done"): drawing only


def naming(task):
    """A pattern for a line that names `task` in any wording: "[x] Received Task 1.",
    "Received a message: Task 1.", "b'Task 1.'", 'Ok("Task 1.")'; not "Task 1.." or "Task 10"."""
    return re.compile(re.escape(task) + r"(?![\d.])")


def printable(text):
    """A line of a copy's output as plain text: no terminal escapes, no control characters."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:MAX_LINE]


class Copy:
    """One copy of the command: `name`, its process, and what it printed."""

    def __init__(self, name, command, cwd, env, container=None):
        self.name, self.container = name, container  # the container it runs in, if any (sandbox.py)
        self.lines = []  # (epoch seconds, line)
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.process.stdout:
            if len(self.lines) < MAX_LINES:
                self.lines.append((time.time(), printable(raw.decode(errors="replace").rstrip())))

    def alive(self):
        return self.process.poll() is None

    def signal(self, number):
        """Send `number` to the copy's whole process group, or its container's; the moment it was sent."""
        if self.container and self.alive():
            subprocess.run(["docker", "kill", "--signal", str(int(number)), self.container], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
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

    def named(self, task):
        """The moments the copy printed a line naming `task`."""
        pattern = naming(task)
        return [moment for moment, line in list(self.lines) if pattern.search(line)]

    def attempts(self, tasks):
        """For the timeline: each of `tasks` the copy named, {task, started, finished}; finished
        when a line saying "done" came before it named another task (None if none did)."""
        patterns = [(task, naming(task)) for task in tasks]
        attempts = []
        for moment, line in list(self.lines):
            task = next((task for task, pattern in patterns if pattern.search(line)), None)
            if task is not None:
                attempts.append({"task": task, "started": moment, "finished": None})
            elif DONE.search(line) and attempts and attempts[-1]["finished"] is None:
                attempts[-1]["finished"] = moment
        return attempts

    def tail(self, count=3):
        """Its last lines of output, as one line for a report."""
        lines = [line.strip() for _moment, line in self.lines[-count:] if line.strip()]
        return " | ".join(lines) or "(no output)"

    def output(self):
        return "\n".join(line for _moment, line in self.lines)


def marked_processes(mark, proc=Path("/proc")):
    """{pid: command line} of the processes whose environment carries RUN_MARK=mark (Linux)."""
    wanted = f"{RUN_MARK}={mark}".encode()
    found = {}
    for entry in proc.glob("[0-9]*"):
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


class Copies:
    """The copies running now and those ended, all ended by end_all()."""

    def __init__(self, command, cwd, env, mark, sandbox=None):
        self.command, self.cwd, self.mark, self.sandbox = command, cwd, mark, sandbox
        self.env = {**env, RUN_MARK: mark}
        self.all = []

    def start(self):
        name = f"copy-{len(self.all) + 1}"
        command, container = self.wrap(self.command, name)
        copy = Copy(name, command, self.cwd, self.env, container)
        self.all.append(copy)
        return copy

    def wrap(self, command, name):
        """(the command line that runs `command`, here or in a container of the sandbox; the container)."""
        if self.sandbox is None:
            return command, None
        container = f"{self.sandbox.name}-{name}"
        return self.sandbox.command(container, self.cwd, command), container

    def running(self):
        return [copy for copy in self.all if copy.alive()]

    def end_all(self):
        """End every copy, then any process of theirs that left its process group: what
        those were ({pid: command line}), for the report."""
        for copy in self.all:
            copy.end()
        escaped = {pid: cmd for pid, cmd in marked_processes(self.mark).items() if pid != os.getpid()}
        for pid in escaped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return escaped

    def first_named(self, task):
        """(moment, copy) of the first line any copy printed naming `task`, or None."""
        seen = [(moment, copy) for copy in self.all for moment in copy.named(task)[:1]]
        return min(seen, key=lambda item: item[0], default=None)
