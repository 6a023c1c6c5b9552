"""A whole lab stack of the tests' own (tests/support/labstack.py: its own compose project
and free host ports), run through the real `docker compose`, and what the tests
observe of it. It is removed, with its volume, at the end.
"""

import base64
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labstack import LabStack

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = 3
SECONDS_PER_DOT = 0.5
STOP_GRACE_SECONDS = 5


class Lab(LabStack):
    """The test stack, and what the tests observe of it (the lab in ROOT, or in a clone at root)."""

    def __init__(self, timelines, root=ROOT):
        super().__init__(
            f"lab-test-{os.getpid()}",
            timelines,
            root,
            SECONDS_PER_DOT=str(SECONDS_PER_DOT),
            STOP_GRACE_SECONDS=str(STOP_GRACE_SECONDS),
        )

    def failed(self, message):
        pytest.fail(message)

    @contextmanager
    def sending(self, *args, **popen):
        """scripts/send.sh ARGS running in the background (text pipes), ended on the way out."""
        process = subprocess.Popen(
            [str(self.root / "scripts/send.sh"), *args],
            cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
        )  # fmt: skip
        try:
            yield process
        finally:
            process.kill()
            process.communicate()

    def send(self, *args, env=None, **kwargs):
        return self.script("send.sh", *args, env=env, **kwargs)

    def script(self, name, *args, **kwargs):
        return self.run([str(self.root / "scripts" / name), *args], **kwargs)

    def saved_run(self, name):
        """A run that `send.sh --wait --name NAME` saved, and its first record of each task done."""
        run = json.loads((self.timelines / f"{name}.json").read_text())
        done = {}
        for event in run["events"]:
            if event["event"] == "done":
                done.setdefault(int(event["message_id"].rsplit(".", 1)[1]), event)
        return run, done

    def up(self, consumers=CONSUMERS, *extra):
        self.compose("up", "--detach", "--wait", "--scale", f"consumer={consumers}", *extra)
        self.wait_for(lambda: self.queue()[1] == consumers, f"{consumers} consumers attached")

    def management(self, path, user=None, password=None, method="GET", body=None):
        """A request to the management API on 127.0.0.1: (status, JSON body or None)."""
        login = f"{user or self.user}:{password or self.password}".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/api/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": "Basic " + base64.b64encode(login).decode(), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                data = response.read()
                return response.status, json.loads(data) if data else None
        except urllib.error.HTTPError as error:
            return error.code, None

    def now(self):
        return datetime.now(UTC).isoformat()

    def consumer_logs(self, since):
        return self.compose("logs", "--no-color", "--no-log-prefix", "--since", since, "consumer").stdout

    def done(self, since):
        """{worker: [task, ...]} from the workers' "[x] Done 'task' (worker, …)" lines."""
        finished = {}
        for task, worker in re.findall(r"\[x\] Done '(.*)' \(([^,]+),", self.consumer_logs(since)):
            finished.setdefault(worker, []).append(task)
        return finished


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("timelines"))
    try:
        lab.compose("up", "--detach", "--build", "--wait", "--scale", f"consumer={CONSUMERS}", timeout=900)
        yield lab
    finally:
        lab.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture
def lab(stack):
    """The test stack with all consumers attached and an empty queue."""
    stack.up()
    stack.purge()  # what a failed test left behind must not fail the next ones too
    stack.wait_for(lambda: stack.queue()[0] == 0, "an empty task_queue")
    return stack
