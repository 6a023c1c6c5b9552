"""Where the dashboard's figures come from, none of them from the management
plugin's metrics (a deprecated feature on RabbitMQ 4.x):

- the stream lab.history (see StreamPosition for where it reads from), which keeps
  every event of the fanout exchange lab.events (the workers' and send.sh's);
- the stream lab.consumers, the broker's own word on task_queue's consumers
  (amq.rabbitmq.event, through lab.consumer-events), read from its first: a consumer
  attached, or gone (a worker killed without a word is noticed this way); consumer
  tags are the workers' names. Read back after a restart, it still tells the real
  workers from names forged events made up, however long ago they attached;
- every second while a page is open, each queue's ready count and consumer
  count by AMQP passive declare (exact; a connection of their own), and its
  unacknowledged count from the rabbitmq_prometheus endpoint (a quorum
  queue's figure there is up to 5 s old: the page says so). On a cluster only
  the queue leader's node has that figure: every node is asked.

It follows one node at a time: when that node goes, the next one that answers
(RABBITMQ_HOSTS: a cluster's nodes), and reads the stream on from where it stopped:
nothing is missed unless the stream no longer holds it (then the hub marks the gap).
"""

import asyncio
import itertools
import logging
import random
import time

import aio_pika
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, ChannelNotFoundEntity, ProbableAuthenticationError

import door
from lab.metrics import fetch_queue_figures
from lab.schema import consumer_event
from lab.topology import CONSUMERS_STREAM, DEAD_LETTER_QUEUE, HISTORY_STREAM, QUEUE

QUEUES = (QUEUE, DEAD_LETTER_QUEUE)
POLL_SECONDS = 1.0
CALL_TIMEOUT = 5.0  # a node that takes longer to answer a connect or a declare counts as gone
LOST = (AMQPError, OSError, TimeoutError, ChannelInvalidStateError)
# How far back in the stream a dashboard that starts reads: an hour, so a page opened after
# a recent batch (or a dashboard restarted in the middle of one) shows all of it; and no
# further, as the hub keeps only the latest batches (batches.py) and matches a batch with
# send.sh's saved run by its name, or for an unnamed one during its first hour.
REPLAY_SECONDS = 3600
# Stream deliveries on their way at once (a stream needs a prefetch over AMQP 0.9.1): what
# the dashboard holds unread is at most this many messages, the stream keeps the rest. Not
# fewer: at 20 it read a forged flood's backlog too slowly, and a real batch after it showed late.
PREFETCH = 200
# How long to wait for the stream's last chunk, to learn where its backlog ends: an empty
# stream sends nothing.
TAIL_SECONDS = 1.0

log = logging.getLogger("dashboard")


class StreamPosition:
    """Where the dashboard is in a stream. AMQP 0.9.1 has no server-side offset tracking:
    the dashboard keeps its own, in memory. At start it reads lab.history from REPLAY_SECONDS
    back (a time: the broker attaches at the chunk boundary before it), lab.consumers from its
    first (replay_seconds None); after a lost connection or
    node, from the offset after the last one it handled, so nothing is missed. A reconnect
    may deliver a chunk again (the broker attaches at a chunk's start): offsets already
    handled are skipped."""

    def __init__(self, now, replay_seconds=REPLAY_SECONDS):
        self.last = None  # the last offset handled
        self.resumed_at = None  # where a resumed read must start (None: not resumed, or checked)
        self.replay_seconds = replay_seconds  # None: from the first the stream holds
        # The earliest a message of this read can have been stored: the door's past bound is
        # measured from it (door.py): a stream message carries no time the broker gave it.
        self.since = now - (replay_seconds or 0)
        self.stopped_at = None

    def start(self):
        """x-stream-offset for a new read: a time (or the first), or the next offset after
        the last handled."""
        if self.last is None:
            return f"{self.replay_seconds}s" if self.replay_seconds else "first"  # the broker's "that long ago"
        self.resumed_at = self.last + 1
        return self.last + 1

    def stop(self, now):
        """The read ended (its connection lost) at `now`: a gap found on resuming begins there."""
        if self.last is not None:
            self.stopped_at = now

    def take(self, offset):
        """Whether the delivery at `offset` is new (then it is the last handled), and the offsets
        that a resumed read skipped (the stream no longer held them: retention), if any."""
        if self.last is not None and offset <= self.last:
            return False, None
        skipped = None
        if self.resumed_at is not None:
            if offset > self.resumed_at:
                skipped = (self.resumed_at, offset - 1)
            self.resumed_at = None
        self.last = offset
        return True, skipped


class Follower:
    """Follows the broker, or a cluster's nodes in turn, into the hub, for ever."""

    def __init__(self, config, hub, connect=aio_pika.connect, queue_figures=fetch_queue_figures, sleep=asyncio.sleep):
        self.config, self.hub = config, hub
        self.connect, self.queue_figures, self.sleep = connect, queue_figures, sleep
        self.position = StreamPosition(time.time())  # in lab.history
        self.backlog_end = None  # lab.history's last chunk's offset when this read began: up to it, catching up
        self.consumers_position = StreamPosition(time.time(), replay_seconds=None)  # in lab.consumers

    def hosts(self):
        """The nodes in a random order, then round and round: a dead node is skipped."""
        return itertools.cycle(random.sample(self.config.hosts, len(self.config.hosts)))

    async def run(self):
        failures = 0
        for host in self.hosts():
            try:
                connection = await self.open(host, "dashboard")
            except ProbableAuthenticationError:
                raise  # a wrong login stays wrong
            except LOST as error:
                failures += 1
                log.warning("[!] broker %s not reachable (%s)", host, error)
                if failures % len(self.config.hosts) == 0:  # every node tried: wait a little
                    await self.sleep(min(0.5 * failures, 3.0))
                continue
            failures = 0
            try:
                await self.follow(connection, host)
            except LOST as error:
                then = "trying the next node" if len(self.config.hosts) > 1 else "connecting again"
                log.warning("[!] lost broker %s (%s); %s", host, error, then)
            finally:
                self.position.stop(time.time())
                self.consumers_position.stop(time.time())
                self.hub.set_broker(None)
                await close_quietly(connection)

    async def open(self, host, name):
        return await asyncio.wait_for(
            self.connect(self.config.amqp_url(host), client_properties={"connection_name": name}), CALL_TIMEOUT
        )

    async def follow(self, connection, host):
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)  # each consumer's; required on a stream (0 is refused)
        # The broker declares both streams. Manual acks (a stream refuses auto-ack): they grant
        # credit for more, and delete nothing. The broker's word first: who is real.
        consumers = await channel.declare_queue(CONSUMERS_STREAM, passive=True)
        await consumers.consume(self.on_consumer, arguments={"x-stream-offset": self.consumers_position.start()})
        history = await channel.declare_queue(HISTORY_STREAM, passive=True)
        self.backlog_end = await self.stream_tail(history)
        start = self.position.start()
        await history.consume(self.on_history, arguments={"x-stream-offset": start})
        self.hub.set_broker(host)
        node = f" (node {host})" if len(self.config.hosts) > 1 else ""
        where = f"offset {start} on" if isinstance(start, int) else f"{start} ago"
        log.info("[*] dashboard reading %s from %s%s: open %s", HISTORY_STREAM, where, node, self.config.address)
        # The figures on a connection of their own: on the events' one, a declare's answer waits
        # behind every event sent before it, and a flood of events made it late, the node
        # counted as lost, and the events meanwhile were lost with the dashboard's queue.
        figures_connection = await self.open(host, "dashboard figures")
        try:
            await self.keep_figures(connection, figures_connection, host)
        finally:
            await close_quietly(figures_connection)

    async def stream_tail(self, stream):
        """The offset lab.history's last chunk starts at (None: the stream is empty). What a read
        begun now finds up to it is the backlog: stored at the stream's pace, read at its own,
        it is all read (a flood's bounds are for what arrives live)."""
        tail = asyncio.get_running_loop().create_future()

        async def on_message(message):
            if not tail.done():
                tail.set_result((message.headers or {}).get("x-stream-offset"))
            await message.ack()

        tag = await stream.consume(on_message, arguments={"x-stream-offset": "last"})
        try:
            offset = await asyncio.wait_for(tail, TAIL_SECONDS)
        except TimeoutError:
            offset = None
        finally:
            await stream.cancel(tag)
        return offset if isinstance(offset, int) and not isinstance(offset, bool) else None

    async def keep_figures(self, events_connection, connection, host):
        """The queues' figures every second while a page watches (each reading costs the broker
        and the dashboard CPU: with no page open, a student's laptop idles); until either
        connection goes."""
        figures_channel = await connection.channel()
        while True:
            if not (events_connection.connected.is_set() and connection.connected.is_set()):
                raise ConnectionResetError(f"a connection to {host} closed")
            if self.hub.watched():
                figures, figures_channel = await self.figures(connection, figures_channel, host)
                self.hub.set_queues(figures)
                self.hub.tell_batches()
            await self.sleep(POLL_SECONDS)

    async def figures(self, connection, channel, host):
        figures = {"unacked_from": "prometheus"}
        # Every node: on a cluster only the queue leader's node has the queue's figures.
        readings = await asyncio.gather(*(asyncio.to_thread(self.queue_figures, node) for node in self.config.hosts))
        prometheus = {}
        for reading in readings:
            for queue, values in reading.items():
                prometheus.setdefault(queue, values)
        for name in QUEUES:
            try:
                queue = await asyncio.wait_for(channel.declare_queue(name, passive=True), CALL_TIMEOUT)
            except ChannelNotFoundEntity:  # not declared yet; the failed declare closed the channel
                figures[name] = None
                channel = await connection.channel()
                continue
            declared = queue.declaration_result
            figures[name] = {"ready": declared.message_count, "consumers": declared.consumer_count,
                             "unacked": prometheus.get(name, {}).get("messages_unacked")}  # fmt: skip
        return figures, channel

    async def on_history(self, message):
        offset = (message.headers or {}).get("x-stream-offset")
        if isinstance(offset, int) and not isinstance(offset, bool):
            new, skipped = self.position.take(offset)
            if skipped:
                log.warning("[!] offsets %d to %d are no longer in %s: their events are missed", *skipped,
                            HISTORY_STREAM)  # fmt: skip
                self.hub.mark_gap(self.position.stopped_at, time.time())
            if new:
                self.read(message.body, catching_up=self.backlog_end is not None and offset <= self.backlog_end)
        await message.ack()  # credit for the next; a stream deletes nothing

    async def on_consumer(self, message):
        offset = (message.headers or {}).get("x-stream-offset")
        if isinstance(offset, int) and not isinstance(offset, bool) and self.consumers_position.take(offset)[0]:
            event = consumer_event(message.routing_key, message.headers, time.time())
            if event:
                self.hub.add_events([event])
        await message.ack()

    def read(self, body, catching_up=False):
        if not catching_up and len(body) <= door.MAX_BODY_BYTES and not self.hub.room_for(len(body)):
            return  # a flood: dropped unread, counted
        events, dropped, out_of_time = door.read_message(body, time.time(), since=self.position.since)
        self.hub.drop(dropped, out_of_time)
        if events:
            self.hub.add_events(events, catching_up)


async def close_quietly(connection):
    try:
        await asyncio.wait_for(connection.close(), 1)
    except (*LOST, asyncio.CancelledError):
        pass
