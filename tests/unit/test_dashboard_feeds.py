"""The dashboard follows a cluster (issue 17): when its node goes it connects to the next
that answers, and the hub marks the time without events. A fake connect stands in for
aio-pika; tests/stack/test_dashboard.py follows a real broker."""

import asyncio
import json
import random

import pytest
from aiormq.exceptions import ProbableAuthenticationError

import feeds
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


def test_when_its_node_dies_it_follows_the_next_that_answers_and_marks_the_gap(monkeypatch):
    follower, hub, tried, slept, followed = follower_and(monkeypatch, dead={"rabbitmq-2"})
    run(follower)
    assert tried == ["rabbitmq", "rabbitmq-2", "rabbitmq-3", "rabbitmq"]
    assert [c.host for c in followed] == ["rabbitmq", "rabbitmq-3", "rabbitmq"]
    assert all(c.closed for c in followed)
    assert len(hub.status["gaps"]) == 2 and all(g["from"] <= g["to"] for g in hub.status["gaps"])
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
