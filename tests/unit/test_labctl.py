"""labctl's logic without Docker or a broker: the settings as the host reads them, the
events a demo hears (checked against the schema, bounded), and the cluster's state
from rabbitmqctl's JSON."""

import json
import time
from types import SimpleNamespace

import pytest

from lab import schema
from lab.marks import add_mark, read_marks
from labctl import cluster, events, settings


def test_the_shell_overrides_env_and_commented_lines_are_no_settings(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# a comment\nAMQP_PORT=5672\n#COMPOSE_FILE=compose.yaml\nPREFETCH=1\n")
    values = settings.lab_environment({"PREFETCH": "0", "AMQP_PORT": ""}, dotenv)
    assert values == {"AMQP_PORT": "5672", "PREFETCH": "0"}


def test_a_setting_the_host_cannot_use_is_the_images_one_line():
    # lab/settings.py's rules and words, as every image says them.
    with pytest.raises(settings.SettingsError, match=r"^AMQP_PORT must be a whole number from 1 to 65535, got 'abc'"):
        settings.read({"AMQP_PORT": "abc"})
    with pytest.raises(settings.SettingsError, match=r"^MAX_DOTS_PER_TASK must be a whole number >= 1, got '0'"):
        settings.read({"MAX_DOTS_PER_TASK": "0"})
    with pytest.raises(settings.SettingsError, match=r"^LAB_BIND_ADDRESS=0.0.0.0 publishes the lab beyond this"):
        settings.read({"LAB_BIND_ADDRESS": "0.0.0.0"})  # with .env's guest login
    own = {"LAB_BIND_ADDRESS": "0.0.0.0", "RABBITMQ_DEFAULT_USER": "student", "RABBITMQ_DEFAULT_PASS": "s3cret"}
    assert settings.read(own).amqp_host == "127.0.0.1"


class FakeChannel:
    """A queue holding the bodies a test gives, handed out by basic_get."""

    def __init__(self, bodies):
        self.bodies = list(bodies)

    def basic_get(self, _queue, auto_ack):
        assert auto_ack
        return (SimpleNamespace(), None, self.bodies.pop(0)) if self.bodies else (None, None, None)


def hearing(bodies):
    heard = events.Events.__new__(events.Events)  # no broker: the channel is the test's
    heard.channel, heard.queue, heard.heard = FakeChannel(bodies), "q", []
    heard.connection = SimpleNamespace(sleep=time.sleep)
    return heard


def received(number, worker="consumer-2"):
    at = time.time()
    return {"event": "received", "worker": worker, "task": f"Task {number}.", "message_id": f"b1.{number}",
            "batch": "b1", "redelivered": False, "started": at, "at": at}  # fmt: skip


def test_events_that_fail_the_schema_or_come_too_big_are_dropped():
    forged = {**received(1), "worker": "<script>" * 100}  # a name longer than the schema allows
    bodies = [b"not json", json.dumps({"not": "a list"}).encode(), json.dumps([forged]).encode(),
              b"[" + b" " * schema.MAX_BODY_BYTES + b"]", json.dumps([received(2)]).encode()]  # fmt: skip
    heard = hearing(bodies)
    found = heard.wait_for(lambda event: event["event"] == "received", time.monotonic() + 2)
    assert found["message_id"] == "b1.2" and heard.heard == [found]


def test_waiting_for_an_event_that_never_comes_ends_at_the_deadline():
    heard = hearing([json.dumps([received(1)]).encode()])
    started = time.monotonic()
    assert heard.wait_for(lambda event: event["message_id"] == "b1.9", started + 0.5) is None
    assert 0.4 < time.monotonic() - started < 2


QUORUM = [
    {"Node Name": "rabbit@rabbitmq", "Raft State": "noconnection", "Commit Index": 40},
    {"Node Name": "rabbit@rabbitmq-2", "Raft State": "leader", "Commit Index": 52},
    {"Node Name": "rabbit@rabbitmq-3", "Raft State": "follower", "Commit Index": 52},
]


def test_the_cluster_is_in_sync_only_with_three_members_up_and_one_commit_index(monkeypatch):
    monkeypatch.setattr(cluster, "ctl", lambda *_args: QUORUM)
    assert cluster.members()[0] == ("rabbitmq", "noconnection", 40)
    assert not cluster.in_sync()
    monkeypatch.setattr(cluster, "ctl", lambda *_args: [{**QUORUM[0], "Raft State": "follower", "Commit Index": 52},
                                                          *QUORUM[1:]])  # fmt: skip
    assert cluster.in_sync()
    monkeypatch.setattr(cluster, "ctl", lambda *_args: [{"name": "task_queue", "leader": "rabbit@rabbitmq-3"}])
    assert cluster.leader() == "rabbitmq-3"


def test_each_worker_is_placed_on_the_node_its_connection_reached(monkeypatch):
    containers = {"rabbitmq": "c1", "rabbitmq-2": "c2", "rabbitmq-3": ""}  # rabbitmq-3 is down
    addresses = {"c1": "172.18.0.2 ", "c2": "172.18.0.3 "}

    def output(*args):
        return containers[args[-1]] if args[:2] == ("compose", "ps") else addresses[args[-1]]

    def connection(peer, node_address, name):
        properties = [["product", "longstr", "Pika"], ["connection_name", "longstr", name]]
        return {"name": f"{peer}:40000 -> {node_address}:5672", "client_properties": properties}

    listed = [
        connection("172.18.0.7", "172.18.0.2", "consumer-1"),
        connection("172.18.0.8", "172.18.0.3", "consumer-2"),
        connection("172.18.0.9", "172.18.0.2", "producer"),  # not a worker
        connection("10.0.0.1", "10.9.9.9", "consumer-3"),  # reached no node of the lab's
    ]
    monkeypatch.setattr(cluster, "output", output)
    monkeypatch.setattr(cluster, "ctl", lambda *_args: listed)
    assert cluster.workers_by_node() == {"consumer-1": "rabbitmq", "consumer-2": "rabbitmq-2"}


def test_fault_marks_are_json_whatever_the_label_holds(tmp_path):
    """A label with quotes and a newline (printf-made JSON broke on them) reads back as written."""
    path = tmp_path / "crash.marks"
    add_mark(path, "2026-12-07T10:00:00.5+00:00", 'killed "consumer-2"\nfor good')
    add_mark(path, 1765101600.25, "broker started again")
    assert read_marks(path) == [
        {"at": 1796637600.5, "label": 'killed "consumer-2"\nfor good'},
        {"at": 1765101600.25, "label": "broker started again"},
    ]
