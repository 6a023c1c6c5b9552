"""The dashboard follows a cluster (issue 17): when its node goes it connects to the next
that answers, and reads the stream lab.history on from where it stopped (issue 36). A fake
connect stands in for aio-pika; tests/stack/test_dashboard.py follows a real broker."""

import asyncio
import json
import random
import time

import pytest
from aiormq.exceptions import ProbableAuthenticationError

import feeds
import hub as hub_module
from config import Config
from hub import Hub, Watcher

ENV = {"RABBITMQ_HOSTS": "rabbitmq, rabbitmq-2,rabbitmq-3", "RABBITMQ_DEFAULT_USER": "u", "RABBITMQ_DEFAULT_PASS": "p"}


class Enough(Exception):
    """Ends the test's follower (not an error the follower handles)."""


class FakeConnection:
    def __init__(self, host):
        self.host, self.closed = host, False

    async def close(self):
        self.closed = True


def follower_and(monkeypatch, dead=(), auth_fails=False, sessions=2):
    """A Follower whose connect reaches every node but the dead ones, and whose sessions
    each end with their node dying, `sessions` of them, then Enough."""
    monkeypatch.setattr(random, "sample", lambda hosts, k: list(hosts))  # nodes in the order given
    hub, tried, slept, followed = Hub(), [], [], []

    async def connect(url, **_):
        host = url.split("@")[1].split(":")[0]
        tried.append(host)
        if auth_fails:
            raise ProbableAuthenticationError("ACCESS_REFUSED")
        if host in dead:
            raise ConnectionRefusedError(f"{host} refused")
        return FakeConnection(host)

    async def sleep(seconds):
        slept.append(seconds)

    follower = feeds.Follower(Config.from_env(ENV), hub, connect=connect, sleep=sleep)

    async def follow(connection, host):
        followed.append(connection)
        hub.set_broker(host)
        if len(followed) > sessions:
            raise Enough
        raise ConnectionResetError(f"{host} died")

    follower.follow = follow
    return follower, hub, tried, slept, followed


def run(follower):
    with pytest.raises(Enough):
        asyncio.run(follower.run())


def test_config_takes_a_clusters_nodes_from_rabbitmq_hosts_like_the_workers():
    assert Config.from_env(ENV).hosts == ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
    assert Config.from_env({**ENV, "RABBITMQ_HOSTS": "", "RABBITMQ_HOST": "broker"}).hosts == ("broker",)


def test_when_its_node_dies_it_follows_the_next_that_answers_and_marks_no_gap(monkeypatch):
    follower, hub, tried, slept, followed = follower_and(monkeypatch, dead={"rabbitmq-2"})
    run(follower)
    assert tried == ["rabbitmq", "rabbitmq-2", "rabbitmq-3", "rabbitmq"]
    assert [c.host for c in followed] == ["rabbitmq", "rabbitmq-3", "rabbitmq"]
    assert all(c.closed for c in followed)
    assert hub.status["gaps"] == []  # it reads the stream on from where it stopped: nothing missed
    assert slept == []  # a node answered in each round: no waiting


def test_with_every_node_down_it_waits_a_little_between_rounds(monkeypatch):
    down = {"rabbitmq", "rabbitmq-2", "rabbitmq-3"}
    follower, hub, tried, slept, followed = follower_and(monkeypatch, dead=down)

    async def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 3:
            raise Enough

    follower.sleep = sleep
    run(follower)
    assert len(tried) == 9 and slept == [1.5, 3.0, 3.0]
    assert hub.status["broker"] is None and not followed


def test_a_wrong_login_is_not_retried(monkeypatch):
    follower, _hub, tried, _slept, _followed = follower_and(monkeypatch, auth_fails=True)
    with pytest.raises(ProbableAuthenticationError):
        asyncio.run(follower.run())
    assert tried == ["rabbitmq"]


class FiguresConnection:
    """Enough of an aio-pika connection for keep_figures: passive declares answered, and
    lost once `lose_after` declares have been made."""

    def __init__(self, lose_after):
        self.connected, self.declares, self.lose_after = asyncio.Event(), 0, lose_after
        self.connected.set()

    async def channel(self):
        return self

    async def declare_queue(self, name, passive):
        assert passive
        self.declares += 1
        if self.declares >= self.lose_after:
            self.connected.clear()
        return type("Queue", (), {"declaration_result": type("Ok", (), {"message_count": 2, "consumer_count": 3})})


def keep_figures(watched, rounds, lost="figures"):
    """keep_figures for `rounds` seconds, a page open or not, until the `lost` connection goes
    after 4 declares: (the hub, Prometheus readings, the events' connection, the figures' one)."""
    hub, readings = Hub(), []
    events, figures = FiguresConnection(lose_after=4), FiguresConnection(lose_after=4)
    if lost == "events":
        figures.lose_after = 99
        events.connected.clear()
    if watched:
        hub.watchers.add(Watcher(1 << 20))  # a page open

    def queue_figures(host):
        readings.append(host)
        return {"task_queue": {"messages_unacked": 1}}

    async def sleep(seconds):
        if len(slept) == rounds:
            raise Enough
        slept.append(seconds)

    slept = []
    follower = feeds.Follower(Config.from_env(ENV), hub, queue_figures=queue_figures, sleep=sleep)
    with pytest.raises((Enough, ConnectionResetError)) as ended:
        asyncio.run(follower.keep_figures(events, figures, "rabbitmq"))
    return hub, readings, events, figures, ended.type


def test_with_no_page_open_it_asks_the_broker_for_no_figures():
    hub, readings, events, figures, ended = keep_figures(watched=False, rounds=5)
    assert ended is Enough and readings == [] and figures.declares == events.declares == 0
    assert hub.latest_queues is None


def test_with_a_page_open_it_reads_the_figures_on_their_own_connection_every_second_until_it_goes():
    # Not on the events' connection: there an answer waits behind every event sent before it.
    hub, readings, events, figures, ended = keep_figures(watched=True, rounds=5)
    assert ended is ConnectionResetError  # two queues a round: lost in the second round
    # Every node's Prometheus endpoint: only the queue leader's has the queue's figures.
    assert sorted(readings) == sorted(["rabbitmq", "rabbitmq-2", "rabbitmq-3"] * 2)
    assert figures.declares == 4 and events.declares == 0
    assert json.loads(hub.latest_queues)["task_queue"] == {"ready": 2, "consumers": 3, "unacked": 1}


def test_the_events_connection_lost_ends_the_figures_too():
    _hub, readings, _events, _figures, ended = keep_figures(watched=True, rounds=5, lost="events")
    assert ended is ConnectionResetError and readings == []


def test_the_unacked_count_comes_from_the_node_that_has_it():
    hub = Hub()
    hub.watchers.add(Watcher(1 << 20))
    figures = FiguresConnection(lose_after=99)

    def queue_figures(host):  # only the queue leader's node has the queue's figures
        return {"task_queue": {"messages_unacked": 2}} if host == "rabbitmq-3" else {}

    follower = feeds.Follower(Config.from_env(ENV), hub, queue_figures=queue_figures)
    found, _channel = asyncio.run(follower.figures(figures, figures, "rabbitmq"))
    assert found["task_queue"]["unacked"] == 2


def delivery(offset, *events, exchange="lab.events", routing_key="", headers=None):
    """A stream delivery as aio-pika hands it over: its offset in a header, acked by the reader."""

    class Delivery:
        body, acked = json.dumps(list(events)).encode(), False

        def __init__(self):
            self.exchange, self.routing_key = exchange, routing_key
            self.headers = {**(headers or {}), "x-stream-offset": offset}

        async def ack(self):
            self.acked = True

    return Delivery()


def attached(worker, at):
    return {"event": "attached", "worker": worker, "prefetch": 1, "at": at}


class StreamChannel:
    """Enough of an aio-pika connection and channel for follow: it records the stream's
    consumer (its prefetch, its x-stream-offset), then the node dies."""

    def __init__(self, reads):
        self.reads, self.connected = reads, asyncio.Event()

    async def channel(self):
        return self

    async def set_qos(self, prefetch_count):
        self.prefetch = prefetch_count

    async def declare_queue(self, name=None, passive=False, **_):
        return StreamQueue(self, name, passive)


class StreamQueue:
    def __init__(self, channel, name, passive):
        self.channel, self.name, self.passive = channel, name, passive

    async def bind(self, exchange, key):
        pass

    async def consume(self, callback, no_ack=False, arguments=None):
        self.channel.reads.append({"stream": self.name, "prefetch": self.channel.prefetch, "no_ack": no_ack,
                                   "passive": self.passive, **arguments})  # fmt: skip
        if arguments["x-stream-offset"] == "last":  # the last chunk: it starts at offset 41
            await callback(delivery(41))
        return f"tag-{len(self.channel.reads)}"

    async def cancel(self, tag):
        self.channel.reads.append({"cancelled": tag})


def test_it_reads_the_stream_from_an_hour_back_then_on_from_the_offset_after_the_last_it_handled():
    reads, hub = [], Hub()

    async def figures_connection_refused(url, **_):
        raise ConnectionResetError("node gone")  # ends the session once the stream is read

    follower = feeds.Follower(Config.from_env(ENV), hub, connect=figures_connection_refused)

    async def session():
        with pytest.raises(ConnectionResetError):
            await follower.follow(StreamChannel(reads), "rabbitmq")
        for offset in (0, 1, 2):
            await follower.on_history(delivery(offset, attached(f"consumer-{offset}", time.time())))
        await follower.on_consumer(broker_says("consumer.created", 7))
        follower.position.stop(time.time())  # its node lost
        with pytest.raises(ConnectionResetError):
            await follower.follow(StreamChannel(reads), "rabbitmq-2")

    asyncio.run(session())
    # A prefetch (a stream refuses none), manual acks, the streams the broker declared: the broker's
    # word on the consumers from its first, the history from an hour back; then each on from its own.
    # Each read first asks where the stream's last chunk starts: up to there, it catches up.
    read = {"prefetch": feeds.PREFETCH, "no_ack": False, "passive": True}
    assert reads == [{"stream": "lab.consumers", **read, "x-stream-offset": "first"},
                     {"stream": "lab.history", **read, "x-stream-offset": "last"}, {"cancelled": "tag-2"},
                     {"stream": "lab.history", **read, "x-stream-offset": "3600s"},
                     {"stream": "lab.consumers", **read, "x-stream-offset": 8},
                     {"stream": "lab.history", **read, "x-stream-offset": "last"}, {"cancelled": "tag-6"},
                     {"stream": "lab.history", **read, "x-stream-offset": 3}]  # fmt: skip
    assert follower.backlog_end == 41
    assert follower.position.since <= time.time() - 3600 + 1  # the door measures replayed events from there


def test_a_chunk_delivered_again_after_a_reconnect_is_read_once_and_every_delivery_acked():
    hub = Hub()
    follower = feeds.Follower(Config.from_env(ENV), hub)
    now = time.time()
    first = [delivery(n, attached(f"consumer-{n}", now)) for n in range(3)]
    # Resumed at 3, the broker attaches at the chunk's start: 1 and 2 again, then 3.
    again = [delivery(n, attached(f"consumer-{n}", now)) for n in (1, 2, 3)]

    async def read():
        for message in first:
            await follower.on_history(message)
        follower.position.stop(now)
        assert follower.position.start() == 3
        for message in again:
            await follower.on_history(message)

    asyncio.run(read())
    workers = [event["worker"] for _n, text in hub.history for event in json.loads(f"[{text}]")]
    assert workers == ["consumer-0", "consumer-1", "consumer-2", "consumer-3"]
    assert all(message.acked for message in first + again)  # credit for more: a stream deletes nothing
    assert hub.status["gaps"] == [] and follower.position.last == 3


def test_offsets_the_stream_no_longer_holds_when_it_resumes_are_a_gap():
    hub = Hub()
    follower = feeds.Follower(Config.from_env(ENV), hub)
    now = time.time()

    async def read():
        await follower.on_history(delivery(0, attached("consumer-1", now)))
        follower.position.stop(now - 5)
        follower.position.start()
        await follower.on_history(delivery(40, attached("consumer-2", now)))  # 1 to 39: gone (retention)
        await follower.on_history(delivery(41, attached("consumer-3", now)))

    asyncio.run(read())
    (gap,) = hub.status["gaps"]
    assert gap["from"] == now - 5 and gap["to"] >= now
    assert follower.position.last == 41


def test_a_forged_event_in_the_stream_is_refused_by_the_schema_and_an_old_one_kept():
    hub = Hub()
    follower = feeds.Follower(Config.from_env(ENV), hub)
    replayed = attached("consumer-1", time.time() - 3000)  # stored 50 minutes ago, read at start
    forged = {"event": "attached", "worker": "<img src=x>", "prefetch": "one", "at": time.time()}
    asyncio.run(follower.on_history(delivery(0, replayed, forged)))
    assert [json.loads(f"[{text}]") for _n, text in hub.history] == [[replayed]]
    assert hub.status["dropped"] == 1 and hub.status["out_of_time"] == 0


BROKER_SAYS_ATTACHED = {"consumer_tag": "consumer-2", "queue": "task_queue", "vhost": "/",
                        "timestamp_in_ms": 1_796_000_000_500}  # fmt: skip


def broker_says(routing_key, offset, **headers):
    """A message of lab.consumers: the broker's word (amq.rabbitmq.event), all in its headers."""
    message = delivery(offset, exchange="amq.rabbitmq.event", routing_key=routing_key,
                       headers={**BROKER_SAYS_ATTACHED, **headers})  # fmt: skip
    message.body = b""
    return message


def test_the_brokers_word_from_its_stream_marks_the_workers_real_and_the_same_headers_on_lab_events_do_not():
    # Read back after a restart, lab.consumers (only the broker publishes there: an internal
    # exchange) is what tells a real worker from a forged name, however long ago it attached.
    hub = Hub()
    follower = feeds.Follower(Config.from_env(ENV), hub)
    said = [
        broker_says("consumer.created", 0),
        broker_says("consumer.created", 1, consumer_tag="consumer-3"),
        broker_says("consumer.deleted", 2, consumer_tag="consumer-3"),
        broker_says("consumer.created", 1),
    ]
    # The same headers published to lab.events (anyone with the login can): not the broker's word.
    forged = delivery(0, exchange="lab.events", routing_key="consumer.created",
                      headers={**BROKER_SAYS_ATTACHED, "consumer_tag": "forged-1"})  # fmt: skip
    forged.body = b""

    async def read():
        for message in said:  # the last delivered again (a chunk again after a reconnect): once
            await follower.on_consumer(message)
        await follower.on_history(forged)

    asyncio.run(read())
    events = [event for _n, text in hub.history for event in json.loads(f"[{text}]")]
    assert [(e["event"], e["worker"]) for e in events] == [
        ("attached", "consumer-2"), ("attached", "consumer-3"), ("gone", "consumer-3")]  # fmt: skip
    assert events[0] == {"event": "attached", "worker": "consumer-2", "at": 1_796_000_000.5, "broker": True}
    assert hub.seen_by_broker == {"consumer-2", "consumer-3"} and hub.status["dropped"] == 1
    assert list(hub.attached) == ["consumer-2"]  # who is attached now, for a snapshot
    assert all(message.acked for message in [*said, forged])


def test_the_backlog_a_read_catches_up_on_is_all_read_and_what_comes_live_is_bounded(monkeypatch):
    # A restarted dashboard read a batch of 2,000 quick tasks back at the stream's pace; the
    # bounds of a second dropped most of it, and the page showed it running with tasks cut.
    hub = Hub()
    follower = feeds.Follower(Config.from_env(ENV), hub)
    follower.backlog_end = 99
    now = time.time()

    def done(n):
        return {"event": "done", "worker": "consumer-1", "task": f"Task {n}.", "message_id": f"b.{n}", "batch": "b",
                "redelivered": False, "started": now - 2, "finished": now - 1, "at": now - 1}  # fmt: skip

    big = [done(n) for n in range(1, 2001)]  # 2,000 events, some 400 kB: over a second's bounds
    hub.add_events([{"event": "attached", "worker": "consumer-1", "at": now - 3, "broker": True}])

    async def read():
        for offset in range(100):
            await follower.on_history(delivery(offset, *big[offset * 20 : offset * 20 + 20]))
        for offset in range(100, 200):  # live now: the same again, a flood
            await follower.on_history(delivery(offset, *big[(offset - 100) * 20 : (offset - 100) * 20 + 20]))

    monkeypatch.setattr(hub_module, "BYTES_PER_SECOND", 100_000)
    asyncio.run(read())
    kept = [event for _n, text in hub.history for event in json.loads(f"[{text}]") if event["event"] == "done"]
    assert len(kept) > 2000 and len(kept) < 2 * 2000  # all of the backlog, not all of the live flood
    assert hub.status["flooded"] > 0
