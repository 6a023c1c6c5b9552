"""A whole lab stack of the tests' own, run through the real `docker compose`.

The stack gets its own compose project name and free host ports, so the tests
never touch a lab the user has running, and it is removed (with its volume)
at the end.
"""

import base64
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = 3
SECONDS_PER_DOT = 0.5
STOP_GRACE_SECONDS = 5


def read_dotenv():
    pairs = (line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.lstrip().startswith("#")}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """The test stack, and what the tests observe of it (the lab in ROOT, or in a clone at root)."""

    def __init__(self, timelines, root=ROOT):
        self.timelines, self.root = timelines, root
        dotenv = read_dotenv()
        self.user, self.password = dotenv["RABBITMQ_DEFAULT_USER"], dotenv["RABBITMQ_DEFAULT_PASS"]
        self.amqp_port, self.management_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": f"lab-test-{os.getpid()}",
            "AMQP_PORT": str(self.amqp_port),
            "MANAGEMENT_PORT": str(self.management_port),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "SECONDS_PER_DOT": str(SECONDS_PER_DOT),
            "STOP_GRACE_SECONDS": str(STOP_GRACE_SECONDS),
            "TIMELINES_DIR": str(timelines),
        }

    def compose(self, *args, check=True, timeout=300, **kwargs):
        result = self.run(["docker", "compose", *args], timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            pytest.fail(f"docker compose {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result

    def run(self, command, timeout=120, env=None, **kwargs):
        return subprocess.run(
            command,
            check=False,
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

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

    def connect(self):
        """A connection to the test stack's broker, as the lab user."""
        credentials = pika.PlainCredentials(self.user, self.password)
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.amqp_port, credentials=credentials))

    def queue(self):
        """(messages ready, consumers) of task_queue, exact, straight from the broker."""
        with self.connect() as connection:
            declared = connection.channel().queue_declare("task_queue", passive=True)
            return declared.method.message_count, declared.method.consumer_count

    def purge(self):
        with self.connect() as connection:
            connection.channel().queue_purge("task_queue")

    def management(self, path, user=None, password=None):
        """GET from the management API on 127.0.0.1: (status, JSON body)."""
        login = f"{user or self.user}:{password or self.password}".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/api/{path}",
            headers={"Authorization": "Basic " + base64.b64encode(login).decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
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

    @staticmethod
    def wait_for(condition, what, timeout=60, interval=0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (pika.exceptions.AMQPError, OSError):
                pass  # not ready yet
            time.sleep(interval)
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


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
