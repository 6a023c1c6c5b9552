"""scripts/autoscale.sh run in the background by the stack tests, as a terminal runs it."""

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager


class Autoscaler:
    """scripts/autoscale.sh ARGS in the background, in a process group of its own (as a
    terminal runs it); its lines collected as they come."""

    def __init__(self, lab, args):
        self.process = subprocess.Popen(
            [str(lab.root / "scripts/autoscale.sh"), *args],
            cwd=lab.root, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text):
        return [line for line in self.lines if text in line]

    def wait_for_line(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while not self.said(text):
            assert self.process.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no line with {text!r} in {timeout} s:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def interrupt(self):
        """Ctrl+C, as a terminal sends it: SIGINT to the whole process group. Its exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        status = self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        return status


@contextmanager
def autoscaling(lab, *args):
    autoscaler = Autoscaler(lab, args)
    try:
        yield autoscaler
    finally:
        if autoscaler.process.poll() is None:
            autoscaler.interrupt()
