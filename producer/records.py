"""Collecting the workers' records of one batch over AMQP: a worker publishes a record (in a
JSON list) to the queue a task names in its reply_to property when it starts a task that
takes time and when it ends any task (lab/schema.py); lab/figures.py says what they mean."""

import json
import logging
import os
import re
import time

from connection import reconnecting
from lab.brokers import broker_hosts, open_first
from lab.figures import FinishedTasks, in_progress
from lab.metrics import fetch_alarms, fetch_queue_figures
from lab.schema import consumer_event
from lab.topology import BROKER_EVENTS_EXCHANGE, QUEUE, header_text

QUIET_SECONDS = 3
log = logging.getLogger("records")
# The lab's workers consume with their Compose name as consumer tag (consumer/worker.py).
LAB_WORKER = re.compile(r"consumer-\d+")
# A quorum queue's figures reach the Prometheus endpoint at its tick, up to 5 s late
# (measured on 4.3.6): task_queue counts as idle once it has looked idle for this long.
IDLE_FOR_SECONDS = 6


class EventListener:
    """The records of one batch, from a queue of the batch's own that its tasks name
    in their reply_to property.

    The queue is declared before the tasks are sent, so no record is missed.
    It is durable and deleted only after going unused for 10 minutes, so the
    records survive a lost connection or a broker restart while waiting.
    """

    QUEUE_ARGUMENTS = {"x-queue-type": "classic", "x-expires": 10 * 60 * 1000}

    def __init__(self, parameters, batch):
        self.parameters, self.batch = parameters, batch
        self.other_consumers = set()  # consumer tags on task_queue that are not lab workers'
        self.task_queue_deleted = None  # when the broker said it deleted task_queue (epoch seconds)
        self.queue = f"task-records.{batch}"
        self.watch_queue = f"broker-events.{batch}"  # BrokerWatch's
        if isinstance(parameters, list) and len(parameters) > 1:
            # A cluster: a classic queue lives on one node, and its records would die with it.
            self.QUEUE_ARGUMENTS = {**self.QUEUE_ARGUMENTS, "x-queue-type": "quorum"}
        with open_first(parameters) as connection:
            self.declare(connection.channel())

    def declare(self, channel):
        channel.queue_declare(self.queue, durable=True, arguments=self.QUEUE_ARGUMENTS)
        # The broker's events too, from before the first task goes: an exclusive queue of the
        # collecting connection missed a deletion of task_queue while the tasks were being sent.
        BrokerWatch.declare(channel, self.watch_queue, self.QUEUE_ARGUMENTS)

    def collect(self, count, timeout, progress, queue_is_idle=lambda: False, stop_requested=lambda: None, *,
                alarms=lambda: ()):  # fmt: skip
        """The events of the batch until `count` different tasks are done (or rejected),
        or `timeout` seconds pass, or no record has come for QUIET_SECONDS while
        `queue_is_idle()` says task_queue holds nothing ready or unacknowledged: the
        tasks not heard of were taken by consumers that send no records. When no record
        has come for QUIET_SECONDS and `alarms()` names a broker alarm, one notice says
        that the broker holds the workers' records back (they are blocked publishers).

        Returns (events, how it ended: "finished", "left the queue", "stopped" or "timed out")."""
        events, seen, finished = [], set(), FinishedTasks()
        deadline = time.monotonic() + timeout
        idle = SustainedIdle(queue_is_idle)
        heard = time.monotonic()
        alarm = HeldBack(alarms)
        ended = "timed out"
        for attempt in reconnecting("lost the connection while waiting for the records"):
            with attempt, open_first(self.parameters) as connection:
                watch = BrokerWatch(connection.channel(), self.watch_queue, self.QUEUE_ARGUMENTS)
                channel = connection.channel()
                self.declare(channel)
                for method, _properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
                    self.hear(watch)
                    if body is None and time.monotonic() - heard >= QUIET_SECONDS:
                        alarm.check()
                    if body is not None:
                        heard = time.monotonic()
                        idle.reset()
                        alarm.reset()
                        for event in json.loads(body):
                            key = (event["event"], event["message_id"], event["worker"], event["started"])
                            if event.get("batch") == self.batch and key not in seen:  # not one redelivered
                                seen.add(key)  # after a lost connection
                                events.append(event)
                                finished.add(event)
                                progress(event, len(finished))
                        channel.basic_ack(method.delivery_tag)
                    if len(finished) >= count:
                        ended = "finished"
                    elif time.monotonic() - heard >= QUIET_SECONDS and not self.ongoing(events) and idle():
                        ended = "left the queue"
                    elif stop_requested():
                        ended = "stopped"
                    elif time.monotonic() <= deadline:
                        continue
                    break
                channel.cancel()
                channel.queue_delete(self.queue)
                channel.queue_delete(self.watch_queue)
        return events, ended

    def ongoing(self, events):
        """The attempts in progress that may still end: one begun before task_queue was deleted
        cannot be acknowledged any more (its delivery went with the queue), and its worker's
        word on it may never come: waiting for it kept send.sh --wait to its timeout."""
        attempts = in_progress(events)
        if self.task_queue_deleted is not None:
            attempts = {attempt for attempt in attempts if attempt[2] > self.task_queue_deleted}
        return attempts

    def hear(self, watch):
        """What the broker said about task_queue since the last time."""
        for kind, name in watch.news():
            if kind == "queue.deleted" and name == QUEUE:
                self.task_queue_deleted = time.time()
            elif kind == "consumer.created" and not LAB_WORKER.fullmatch(name):
                self.other_consumers.add(name)


class BrokerWatch:
    """The broker's own events about task_queue while a batch runs (amq.rabbitmq.event,
    from the rabbitmq_event_exchange plugin): a consumer attached, the queue deleted."""

    KEYS = ("consumer.created", "queue.deleted")

    def __init__(self, channel, queue, arguments):
        self.channel, self.queue = channel, queue
        self.declare(channel, queue, arguments)

    @classmethod
    def declare(cls, channel, queue, arguments):
        """QUEUE, declared as the batch's records queue is (kept across reconnections and, on a
        cluster, a node's loss; gone 10 minutes after its last use), bound to the broker's events."""
        channel.queue_declare(queue, durable=True, arguments=arguments)
        for key in cls.KEYS:
            channel.queue_bind(queue, BROKER_EVENTS_EXCHANGE, key)

    def news(self):
        """(kind, consumer tag or queue name) of each event about task_queue since the last call."""
        while True:
            method, properties, _body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return
            headers = properties.headers or {}
            if method.routing_key == "queue.deleted" and header_text(headers.get("vhost")) == "/":
                yield method.routing_key, header_text(headers.get("name")) or ""
            elif consumer := consumer_event(method.routing_key, headers, now=0):  # task_queue's, attached
                yield method.routing_key, consumer["worker"]


class HeldBack:
    """One notice while a broker alarm holds the workers' records back, asked of `alarms()`
    at most every QUIET_SECONDS; again only after a record has come through."""

    def __init__(self, alarms):
        self.alarms, self.told, self.asked = alarms, False, None

    def reset(self):
        self.told = False

    def check(self):
        if self.told or (self.asked is not None and time.monotonic() - self.asked < QUIET_SECONDS):
            return
        self.asked = time.monotonic()
        if names := self.alarms():
            self.told = True
            log.warning("[!] the broker has a %s alarm: it holds back the workers' records (and so their "
                        "acknowledgements) until it clears; still waiting", " and a ".join(names))  # fmt: skip


class SustainedIdle:
    """Whether `looks_idle()` has said yes at every check for IDLE_FOR_SECONDS."""

    def __init__(self, looks_idle):
        self.looks_idle, self.since = looks_idle, None

    def reset(self):
        self.since = None

    def __call__(self):
        if not self.looks_idle():
            self.reset()
            return False
        self.since = self.since or time.monotonic()
        return time.monotonic() - self.since >= IDLE_FOR_SECONDS


def broker_alarms(env=os.environ):
    """The alarms in effect on the first broker whose Prometheus endpoint answers (lab.metrics)."""
    return next((names for host in broker_hosts(env) if (names := fetch_alarms(host)) is not None), [])


def task_queue_is_idle(env=os.environ):
    """Whether task_queue holds nothing ready and nothing unacknowledged, as the Prometheus
    endpoint of the first broker that has its figures sees it (lab.metrics). False when
    none can tell."""
    figures = next((got for host in broker_hosts(env) if (got := fetch_queue_figures(host).get(QUEUE))), {})
    return bool(figures) and figures.get("messages_ready") == 0 and figures.get("messages_unacked") == 0
