"""The running lab as the host-side programs see it: its settings as Compose resolves
them, its broker (task_queue's counts, the workers' events on lab.events, events of
our own told), and its pool of workers (docker compose)."""

import base64
import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass

import pika
from pika.exceptions import AMQPError, ProbableAccessDeniedError, ProbableAuthenticationError

from lab import schema
from lab.brokers import open_first, short_error
from lab.topology import EVENTS_EXCHANGE, QUEUE, declare_events_exchange

MAX_EVENT_MESSAGES = 1000  # read from lab.events per call, and kept by its queue: what is older is dropped
MAX_BODY_BYTES = 1 << 20
PROPERTIES = pika.BasicProperties(content_type="application/json")


class Refused(Exception):
    """The lab cannot be used as it is (no lab, a refused login): the autoscaler stops."""


class Unreachable(Exception):
    """The broker does not answer now: the pool is kept, the next poll tries again."""


# --- Settings: what Compose resolves from compose.yaml, .env and the environment -----


@dataclass(frozen=True)
class Settings:
    project: str
    brokers: tuple  # (host, AMQP port, management port) of each broker that publishes its ports
    user: str
    password: str


def lab_settings(run=subprocess.run, env=None):
    """The lab's settings as `docker compose config` resolves them (in `env`, default this process's)."""
    result = run(["docker", "compose", "config", "--format", "json"], capture_output=True, text=True, check=False,
                 env=env)  # fmt: skip
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no reason given"]
        raise Refused(f"docker compose config failed: {lines[-1]}")
    config = json.loads(result.stdout)
    brokers = []
    for name, service in config["services"].items():
        published = {int(port["target"]): port for port in service.get("ports", ()) if port.get("published")}
        if name.startswith("rabbitmq") and 5672 in published and 15672 in published:
            host = published[5672].get("host_ip") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            brokers.append((host, int(published[5672]["published"]), int(published[15672]["published"])))
    if not brokers:
        raise Refused("compose.yaml publishes no broker's AMQP and management ports")
    environment = config["services"]["rabbitmq"]["environment"]
    return Settings(config["name"], tuple(brokers), environment["RABBITMQ_DEFAULT_USER"],
                    environment["RABBITMQ_DEFAULT_PASS"])  # fmt: skip


# --- The broker: task_queue's counts, the workers' events, the decisions told ---------


class Broker:
    """One connection to the first broker that answers, opened again after it is lost.
    The ready count comes from a passive queue.declare (at once, from the queue's leader);
    the unacknowledged one from the management API (a quorum queue's lags up to 5 s)."""

    def __init__(self, settings):
        self.settings = settings
        self.connection = self.channel = self.events_queue = None
        self.management = None  # (host, port) of the management API of the broker connected to

    def read(self):
        """(ready, unacked) of task_queue, or Unreachable."""
        try:
            self.open()
            ready = self.channel.queue_declare(QUEUE, passive=True).method.message_count
        except (AMQPError, OSError) as exc:
            self.close()
            raise Unreachable(short_error(exc)) from exc
        return ready, self.unacknowledged()

    def unacknowledged(self):
        host, port = self.management
        login = base64.b64encode(f"{self.settings.user}:{self.settings.password}".encode()).decode()
        request = urllib.request.Request(f"http://{host}:{port}/api/queues/%2F/{QUEUE}",
                                         headers={"Authorization": f"Basic {login}"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                figures = json.loads(response.read(MAX_BODY_BYTES))
        except (OSError, ValueError) as exc:
            raise Unreachable(f"management API: {short_error(exc)}") from exc
        unacked = figures.get("messages_unacknowledged") if isinstance(figures, dict) else None
        if not isinstance(unacked, int) or isinstance(unacked, bool) or unacked < 0:
            raise Unreachable("the management API gives no unacknowledged count for task_queue (yet)")
        return unacked

    def open(self):
        if self.connection is not None and self.connection.is_open:
            return
        by_host = {}

        def connected(parameters):
            self.management = (parameters.host, by_host[(parameters.host, parameters.port)])

        parameters = []
        credentials = pika.PlainCredentials(self.settings.user, self.settings.password)
        for host, amqp_port, management_port in self.settings.brokers:
            by_host[(host, amqp_port)] = management_port
            parameters.append(pika.ConnectionParameters(host, amqp_port, credentials=credentials,
                                                        connection_attempts=1, socket_timeout=3,
                                                        blocked_connection_timeout=5))  # fmt: skip
        try:
            connection = open_first(parameters, refuse=is_login_refused, connected=connected)
        except (ProbableAuthenticationError, ProbableAccessDeniedError) as exc:
            raise Refused(f"the broker refused the lab's login {self.settings.user!r} ({short_error(exc)})") from exc
        self.connection, self.channel = connection, connection.channel()
        declare_events_exchange(self.channel)
        # The workers' events, to hear a scale-down hand a task back. Bounded: a flood drops the oldest.
        declared = self.channel.queue_declare("", exclusive=True, arguments={"x-max-length": MAX_EVENT_MESSAGES})
        self.events_queue = declared.method.queue
        self.channel.queue_bind(self.events_queue, EVENTS_EXCHANGE)

    def events(self):
        """The workers' events since the last call, each checked against the schema."""
        heard = []
        try:
            for _count in range(MAX_EVENT_MESSAGES):
                method, _properties, body = self.channel.basic_get(self.events_queue, auto_ack=True)
                if method is None:
                    break
                heard += schema.events_of(body)[0]
        except (AMQPError, OSError, AttributeError):
            self.close()  # the next read opens it again
        return heard

    def tell(self, event):
        """An event to lab.events for the dashboard; lost with the connection, as a worker's are."""
        try:
            self.channel.basic_publish(EVENTS_EXCHANGE, "", json.dumps([event]), PROPERTIES)
        except (AMQPError, OSError, AttributeError):
            self.close()

    def close(self):
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (AMQPError, OSError):
                pass


def is_login_refused(exc):
    return isinstance(exc, (ProbableAuthenticationError, ProbableAccessDeniedError))


# --- The pool: docker compose, on the host --------------------------------------------


class Pool:
    """The lab's running workers, by the names they give themselves (consumer-N)."""

    def __init__(self, project, run=subprocess.run):
        self.project, self.run = project, run

    def workers(self):
        result = self.compose("ps", "--status", "running", "--format", "{{.Name}}", "consumer")
        if result.returncode != 0:
            raise Refused(f"docker compose ps failed: {last_line(result)}")
        return {name.removeprefix(f"{self.project}-") for name in result.stdout.split()}

    def scale(self, count):
        """`docker compose up -d --no-recreate --scale consumer=COUNT`; its error, or None."""
        result = self.compose(
            "up", "--detach", "--no-recreate", "--no-deps", "--scale", f"consumer={count}", "consumer"
        )
        return None if result.returncode == 0 else last_line(result)

    def compose(self, *args):
        # In a process group of its own: a Ctrl+C lets a scaling under way finish (a few
        # seconds); cut short, it left containers created but not started.
        return self.run(["docker", "compose", *args], capture_output=True, text=True, check=False, process_group=0)


def last_line(result):
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"
