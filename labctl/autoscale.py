"""Size the lab's pool of workers from task_queue, as KEDA and HPA size a deployment.

Usage: scripts/autoscale.sh [-h | --help] [--min N] [--max N] [--per-worker N]
                            [--every S] [--down-after S] [--activation N]
  scripts/autoscale.sh                                   1 to 6 workers, 4 messages each
  scripts/autoscale.sh --min 0 --max 4 --down-after 60   a pool that sleeps when idle
Every S seconds it reads task_queue (ready and unacknowledged messages), decides the pool
(labctl/scaling.py: ceil(messages / per-worker) within min and max; up at once; down only
to the highest recommendation of the last --down-after seconds; 0 only with --min 0, after
that window with no messages above --activation) and applies it with
`docker compose up -d --no-recreate --scale consumer=N`. One line per poll: messages
(ready / unacked), the recommendation, the pool before -> after, why; a line for each task
a scale-down handed back to the queue (from the workers' events); a line when the broker
stops answering (the pool is kept) and when it answers again.
Runs in the foreground beside the running lab; Ctrl+C ends it.
Exit status: 0 when ended by Ctrl+C or SIGTERM, 1 when it cannot run (no lab, a refused
login), 2 for bad arguments.
Takes: until you end it.
Changes: the number of running workers (consumer containers); publishes a "scaled" event
per poll to lab.events (the dashboard hears them). Ended, it leaves the pool as it is.
"""

import argparse
import base64
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pika
from pika.exceptions import AMQPError, ProbableAccessDeniedError, ProbableAuthenticationError

from lab import schema
from lab.brokers import open_first, short_error
from lab.topology import EVENTS_EXCHANGE, QUEUE, declare_events_exchange
from labctl.scaling import Rule, Scaler

MAX_EVENT_MESSAGES = 1000  # read from lab.events per poll, and kept by its queue: what is older is dropped
MAX_BODY_BYTES = 1 << 20
# A quorum queue's unacknowledged count in the management API follows the queue's tick: up to
# 5 s behind (RabbitMQ 4.3.6). A shorter window would scale down on a count that has not yet
# seen the tasks just taken, and stop the busy workers that took them.
COUNT_LAG_SECONDS = 5
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
                heard += valid_events(body)
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


def valid_events(body):
    """The events of a lab.events message that pass the schema (anything else is dropped)."""
    if len(body) > MAX_BODY_BYTES:
        return []
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):
        return []
    return [e for e in events if schema.problem(e, event=True) is None] if isinstance(events, list) else []


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
        return self.run(["docker", "compose", *args], capture_output=True, text=True, check=False)


def last_line(result):
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


# --- The loop -------------------------------------------------------------------------


def run(rule, every, broker, pool, stop, *, out=print, clock=time.monotonic):
    """Poll, decide, apply, say so, until `stop` is set. The pool is left as it is."""
    scaler, unreachable, stopped_here = Scaler(rule), None, set()
    while not stop.is_set():
        workers = pool.workers()
        try:
            ready, unacked = broker.read()
        except Unreachable as exc:
            if unreachable is None:
                out(f"{stamp()} broker not answering ({exc}); the pool stays at {len(workers)}")
            unreachable = str(exc)
            stop.wait(every)
            continue
        if unreachable is not None:
            out(f"{stamp()} broker answering again; deciding from its counts")
            unreachable = None
        decision = scaler.decide(clock(), ready, unacked, len(workers))
        out(f"{stamp()} messages {decision.messages} ({ready} ready / {unacked} unacked)  recommended "
            f"{decision.recommended}  workers {decision.before} -> {decision.workers}  {decision.why}")  # fmt: skip
        if decision.workers != decision.before:
            if failed := pool.scale(decision.workers):
                out(f"{stamp()} docker compose up failed ({failed}); the pool stays as it was")
            elif decision.workers < decision.before:
                stopped_here |= workers - pool.workers()
            else:
                stopped_here -= pool.workers()  # a name used again is a new worker
        broker.tell({"event": "scaled", "at": time.time(), "ready": ready, "unacked": unacked,
                     "recommended": decision.recommended, "before": decision.before,
                     "workers": decision.workers, "why": decision.why})  # fmt: skip
        for event in broker.events():  # a task cut short by a worker this autoscaler stopped
            if event["event"] == "cut" and event["worker"] in stopped_here:
                out(f"{stamp()} the scale-down handed {event['task']!r} back to the queue "
                    f"({event['worker']}: {event['reason'][:80]}; another worker takes it)")  # fmt: skip
        stop.wait(every)


def stamp():
    return time.strftime("%H:%M:%S")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"autoscale.sh: {message} (see --help)\n")


def parse(argv):
    parser = Parser(prog="scripts/autoscale.sh", description=__doc__, add_help=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter, usage=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--min", type=int, default=1, dest="minimum")
    parser.add_argument("--max", type=int, default=6, dest="maximum")
    parser.add_argument("--per-worker", type=int, default=4)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--down-after", type=float, default=30.0)
    parser.add_argument("--activation", type=int, default=0)
    options = parser.parse_args(argv)
    if options.help:
        print(__doc__.strip())
        parser.exit(0)
    rule = Rule(options.minimum, options.maximum, options.per_worker, options.down_after, options.activation)
    if problem := rule.problem():
        parser.error(problem)
    if rule.down_after < COUNT_LAG_SECONDS:
        parser.error(f"--down-after must be at least {COUNT_LAG_SECONDS} s (task_queue's unacknowledged count "
                     f"lags that much), got {options.down_after:g}")  # fmt: skip
    if not 0.1 <= options.every <= 30:
        parser.error(f"--every must be 0.1 to 30 seconds, got {options.every:g}")
    return rule, options.every


def main(argv=None):
    rule, every = parse(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def request_stop(_signum, _frame):
        stop.set()  # a docker compose call under way ends first (Ctrl+C reaches it too)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    broker = None
    try:
        settings = lab_settings()
        broker, pool = Broker(settings), Pool(settings.project)
        running = pool.compose("ps", "--status", "running", "--services").stdout.split()
        if not any(service.startswith("rabbitmq") for service in running):
            raise Refused("the lab is not running; start it with: docker compose up -d --scale consumer=1")
        print(f"Autoscaling the workers: {rule.minimum} to {rule.maximum}, {rule.per_worker} messages each, "
              f"polling every {every:g} s, down after {rule.down_after:g} s; Ctrl+C ends it "
              "(the pool stays as it is)", flush=True)  # fmt: skip
        run(rule, every, broker, pool, stop, out=lambda line: print(line, flush=True))
    except Refused as exc:
        print(f"autoscale.sh: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.close()
    print(f"{stamp()} stopped; the pool stays as it is", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
