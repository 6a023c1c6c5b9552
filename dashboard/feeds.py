"""Where the dashboard's figures come from: the workers' events on the
exchange lab.events, and the management API's queue figures every second."""

import asyncio
import base64
import json
import logging
import time
import urllib.error
import urllib.request

import aio_pika
import tenacity
from aiormq.exceptions import ProbableAuthenticationError

EXCHANGE = "lab.events"  # declared as the workers declare it (consumer/events.py)
QUEUES = ("task_queue", "dead_letter_queue")
POLL_SECONDS = 1.0

log = logging.getLogger("dashboard")


def log_wait(retry_state):
    log.warning("[!] broker not reachable (%s); retrying in %.1f s", retry_state.outcome.exception(),
                retry_state.upcoming_sleep)  # fmt: skip


async def follow_events(config, hub, status):
    """Consume lab.events into the hub, for ever: connect_robust reconnects and
    restores the queue and its binding after a broker restart."""
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_not_exception_type(ProbableAuthenticationError),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=3),
        before_sleep=log_wait,
        reraise=True,
    )
    properties = {"connection_name": "dashboard"}
    connection = await retrying(aio_pika.connect_robust, config.amqp_url, client_properties=properties)
    connection.close_callbacks.add(lambda *_: status.update(broker=False))
    connection.reconnect_callbacks.add(lambda *_: status.update(broker=True))
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    status.update(broker=True)
    print(f"[*] dashboard following {EXCHANGE}: open {config.address}", flush=True)
    async with queue.iterator(no_ack=True) as messages:
        async for message in messages:
            try:
                events = json.loads(message.body)
            except ValueError:
                continue
            if isinstance(events, list):
                hub.add_events(events)


class QueueFigures:
    """The queues' ready and unacknowledged counts and task_queue's consumers, as the
    management API gives them; a consumer gone from one poll to the next (a worker
    killed without a word) becomes a "gone" event."""

    def __init__(self, config, hub):
        self.config, self.hub = config, hub
        self.consumers = None

    def get(self, name):
        request = urllib.request.Request(
            f"{self.config.management_url}/api/queues/%2F/{name}",
            headers={"Authorization": "Basic " + base64.b64encode(self.config.login.encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)

    def poll(self):
        figures = {"now": time.time()}
        for name in QUEUES:
            try:
                queue = self.get(name)
            except (OSError, ValueError):
                figures[name] = None
                continue
            figures[name] = {
                "ready": queue.get("messages_ready", 0),
                "unacked": queue.get("messages_unacknowledged", 0),
                "consumers": sorted(c.get("consumer_tag", "") for c in queue.get("consumer_details", [])),
            }
        return figures

    async def run(self):
        while True:
            figures = await asyncio.to_thread(self.poll)
            task_queue = figures["task_queue"]
            if task_queue is not None:
                consumers = set(task_queue["consumers"])
                if self.consumers is not None:
                    gone = [{"event": "gone", "worker": w, "at": figures["now"]} for w in self.consumers - consumers]
                    if gone:
                        self.hub.add_events(sorted(gone, key=lambda e: e["worker"]))
                self.consumers = consumers
            self.hub.set_queues(figures)
            await asyncio.sleep(POLL_SECONDS)
