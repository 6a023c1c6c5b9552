"""A lab stack of its own, for the stack tests (tests/stack/conftest.py) and the benchmark
(bench/bench.py): its own compose project and free host ports, so a lab the
user has running is never touched, and the lab's login as Compose resolves it.

Settings come from `docker compose config`: compose.yaml's defaults, .env, and
the environment over them, exactly as `docker compose up` sees them.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def service_environment(service, env, root=ROOT):
    """A service's environment as Compose resolves it from compose.yaml, .env and `env`."""
    config = subprocess.run(
        ["docker", "compose", "config", "--format", "json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(config.stdout)["services"][service]["environment"]


class LabStack:
    """The stack of compose project `project`, with `settings` over .env's."""

    def __init__(self, project, timelines, root=ROOT, **settings):
        self.root, self.timelines = root, timelines
        self.amqp_port, self.management_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "AMQP_PORT": str(self.amqp_port),
            "MANAGEMENT_PORT": str(self.management_port),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "TIMELINES_DIR": str(timelines),
            **settings,
        }
        broker = service_environment("rabbitmq", self.env, root)
        self.user, self.password = broker["RABBITMQ_DEFAULT_USER"], broker["RABBITMQ_DEFAULT_PASS"]

    def failed(self, message):
        raise RuntimeError(message)

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

    def compose(self, *args, check=True, timeout=300, **kwargs):
        result = self.run(["docker", "compose", *args], timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            self.failed(f"docker compose {' '.join(args)} failed:\n{result.stdout[-1500:]}{result.stderr[-3000:]}")
        return result

    def connect(self):
        """A connection to the stack's broker, as the lab user."""
        credentials = pika.PlainCredentials(self.user, self.password)
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.amqp_port, credentials=credentials))

    def queue(self):
        """(messages ready, consumers) of task_queue, exact, straight from the broker."""
        with self.connect() as connection:
            declared = connection.channel().queue_declare("task_queue", passive=True)
            return declared.method.message_count, declared.method.consumer_count

    def purge(self, queue="task_queue"):
        """Empty `queue` over AMQP (a rabbitmqctl call would start an Erlang VM in the broker)."""
        with self.connect() as connection:
            connection.channel().queue_purge(queue)

    def wait_for(self, condition, what, timeout=60, interval=0.25, seen=None):
        """condition() until true; or fail, naming `what` and, if given, what `seen()` last saw."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (pika.exceptions.AMQPError, OSError):
                pass  # not ready yet
            time.sleep(interval)
        self.failed(f"timed out after {timeout} s waiting for {what}" + (f"; last seen: {seen()}" if seen else ""))
