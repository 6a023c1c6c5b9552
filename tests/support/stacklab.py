"""The stack tests' lab: a whole lab stack of their own (labstack.py: its own compose
project and free host ports), run through the real `docker compose`, and what the
tests observe of it. The fixtures in tests/stack/conftest.py start and remove it.
"""

import base64
import json
import os
import queue
import re
import subprocess
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime

import pika
import pytest

from lab import schema
from lab.figures import acknowledged
from lab.schema import task_number
from labstack import ROOT, LabStack

CONSUMERS = 3
CLIENTS = ROOT / "tests/stack/clients"  # the tutorial's and a course's clients, as published
SECONDS_PER_DOT = 0.5
STOP_GRACE_SECONDS = 5


def readline_within(stream, seconds):
    """stream.readline() ("" at its end), or the test fails after `seconds` without a whole line."""
    lines = queue.Queue()
    # A thread of its own: a pipe's readline has no timeout. One left blocked ends with the process.
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"no line within {seconds} s")


def runtime_missing(what):
    """A client's runtime or library is not installed here: the test fails in CI (.ci/run
    installs it there), elsewhere it is skipped, saying what is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (.ci/run installs it in CI)")
    pytest.skip(what)


class Lab(LabStack):
    """The test stack, and what the tests observe of it (the lab in ROOT, or in a clone at root)."""

    def __init__(self, timelines, root=ROOT):
        super().__init__(
            f"lab-test-{os.getpid()}",
            timelines,
            root,
            SECONDS_PER_DOT=str(SECONDS_PER_DOT),
            STOP_GRACE_SECONDS=str(STOP_GRACE_SECONDS),
            # The broker as a future RabbitMQ 4.x runs it: no management plugin metrics
            # (the lab's tools and the dashboard read AMQP, Prometheus and broker events).
            MANAGEMENT_METRICS="false",
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
            # Not a kill: the producer runs in a process group of its own and would keep the
            # pipes open; send.sh passes a SIGTERM on to it (lib.sh's end_producer).
            if process.poll() is None:
                process.terminate()
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)

    def send(self, *args, env=None, **kwargs):
        return self.script("send.sh", *args, env=env, **kwargs)

    def script(self, name, *args, **kwargs):
        return self.run([str(self.root / "scripts" / name), *args], **kwargs)

    def saved_run(self, name):
        """A run that `send.sh --wait --name NAME` saved, every record checked against the
        schema, and each task's first "done" the lab counts (acknowledged: not taken back
        by a cut record), by task number."""
        run = json.loads((self.timelines / f"{name}.json").read_text())
        invalid = [(problem, record) for record in run["events"] if (problem := schema.problem(record, event=False))]
        assert not invalid, f"records off the schema: {invalid[:3]}"
        return run, {int(task_number(id_)): record for id_, record in done_by_task(run["events"]).items()}

    def up(self, consumers=CONSUMERS, *extra):
        """The stack as the tests expect it: every service running, `consumers` workers attached,
        named consumer-1 to consumer-N (a module that scaled the pool, the autoscaler's, may leave
        other numbers: they are made again). Skips `compose up --wait` (seconds) when all is so."""
        named = {f"consumer-{number}" for number in range(1, consumers + 1)}
        if not extra and self.is_up(consumers) and set(self.worker_names()) == named:
            return
        self.compose("up", "--detach", "--wait", "--scale", f"consumer={consumers}", *extra)
        if set(self.worker_names()) != named:
            self.compose("rm", "--stop", "--force", "consumer")
            self.compose("up", "--detach", "--wait", "--scale", f"consumer={consumers}", *extra)
        self.wait_for(lambda: self.queue()[1] == consumers, f"{consumers} consumers attached")

    def is_up(self, consumers):
        running = self.compose("ps", "--status", "running", "--format", "{{.Service}}", check=False).stdout.split()
        try:
            return sorted(running) == sorted(["rabbitmq", "dashboard", *["consumer"] * consumers]) and (
                self.queue()[1] == consumers
            )
        except (pika.exceptions.AMQPError, OSError):
            return False

    def worker_names(self):
        """The running workers' names, as they name themselves: "consumer-N", their Compose
        replica names (the numbers a recreated stack gives need not start at 1)."""
        running = self.compose("ps", "--status", "running", "--format", "{{.Name}}", "consumer").stdout.split()
        return sorted(name.removeprefix(f"{self.env['COMPOSE_PROJECT_NAME']}-") for name in running)

    def broker_health(self):
        """The broker container's health: "starting" (just started or restarted), "healthy", ..."""
        return self.compose("ps", "--format", "{{.Health}}", "rabbitmq", check=False).stdout.strip()

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

    def publish(self, messages):
        """Publish (message id, body) messages straight to task_queue, confirmed."""
        with self.connect() as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            for message_id, body in messages:
                properties = pika.BasicProperties(delivery_mode=2, message_id=message_id)
                channel.basic_publish("", "task_queue", body, properties)

    def dead_letter_ids(self):
        """Message ids in dead_letter_queue, read without removing them (closing the channel puts them back)."""
        ids = []
        with self.connect() as connection:
            channel = connection.channel()
            while (message := channel.basic_get("dead_letter_queue"))[0] is not None:
                ids.append(message[1].message_id)
        return ids

    def done(self, since):
        """{worker: [task, ...]} from the workers' "[x] Done 'task' (worker, …)" lines."""
        finished = {}
        for task, worker in re.findall(r"\[x\] Done '(.*)' \(([^,]+),", self.consumer_logs(since)):
            finished.setdefault(worker, []).append(task)
        return finished


def done_by_task(events):
    """{message id: its first "done" record} of the tasks the lab counts done (lab.figures.acknowledged)."""
    done = {}
    for record in acknowledged(events):
        if record["event"] == "done":
            done.setdefault(record["message_id"], record)
    return done


def completions(events):
    """{message id: every "done" record the lab counts} (a task done twice was redelivered)."""
    done = {}
    for record in acknowledged(events):
        if record["event"] == "done":
            done.setdefault(record["message_id"], []).append(record)
    return done


class EventTap:
    """Every event the lab's workers publish to lab.events while the tap runs, checked
    against the schema (lab/schema.py). Events of other publishers (a test forging them
    on purpose) are left out: the lab's workers are the consumer-N of the stack."""

    WORKER = re.compile(r"consumer-\d+")

    def __init__(self, lab):
        self.lab, self.seen, self.invalid = lab, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listen, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stop.set()
        self.thread.join(timeout=10)

    def listen(self):
        while not self.stop.is_set():
            try:
                with self.lab.connect() as connection:  # a connection of its own: pika is not thread-safe
                    channel = connection.channel()
                    tapped = channel.queue_declare("", exclusive=True).method.queue
                    channel.queue_bind(tapped, "lab.events")
                    for _method, _properties, body in channel.consume(tapped, auto_ack=True, inactivity_timeout=1):
                        if self.stop.is_set():
                            return
                        if body is not None:
                            self.check(body)
            except (pika.exceptions.AMQPError, OSError):
                self.stop.wait(1)  # the broker restarts in some tests: listen again

    def check(self, body):
        try:
            events = json.loads(body)
        except (ValueError, RecursionError):
            return  # not the lab's workers' (a test forges bodies like these on purpose)
        for event in events if isinstance(events, list) else ():
            if isinstance(event, dict) and self.WORKER.fullmatch(str(event.get("worker"))):
                self.seen += 1
                if problem := schema.problem(event, event=True):
                    self.invalid.append((problem, event))
