"""dead-letters.sh's program on a fake channel: listing takes nothing away, requeueing
moves each task back before acknowledging it."""

import signal
from datetime import datetime
from types import SimpleNamespace

import pika
import pytest
from pika.exceptions import AMQPConnectionError

import dead_letters
from fake_records import FakeConnection
from lab.topology import DEAD_LETTER_QUEUE, QUEUE

REJECTED_AT = datetime(2026, 5, 4, 21, 4, 5)


@pytest.fixture(autouse=True)
def login(monkeypatch):
    """The lab's settings need a login (lab/settings.py)."""
    monkeypatch.setenv("RABBITMQ_DEFAULT_USER", "lab")
    monkeypatch.setenv("RABBITMQ_DEFAULT_PASS", "secret")


def dead(body, message_id, **death):
    headers = {"x-death": [death]} if death else None
    return pika.BasicProperties(message_id=message_id, headers=headers), body


class FakeChannel:
    """A dead_letter_queue holding `messages` (properties, body): basic_get hands them out
    in turn, and only an ack takes one away. `calls` says what was done, in order."""

    def __init__(self, messages):
        self.queue, self.handed_out, self.calls = list(messages), 0, []

    def basic_get(self, queue):
        self.calls.append(("get", queue))
        if self.handed_out == len(self.queue):
            return None, None, None
        self.handed_out += 1
        properties, body = self.queue[self.handed_out - 1]
        return SimpleNamespace(delivery_tag=self.handed_out), properties, body

    def basic_publish(self, exchange, routing_key, body, properties):
        self.calls.append(("publish", exchange, routing_key, body, properties.message_id))

    def basic_ack(self, tag):
        self.calls.append(("ack", tag))

    def confirm_delivery(self):
        self.calls.append(("confirm",))

    def exchange_declare(self, *_args, **_settings):
        pass

    def queue_bind(self, *_args):
        pass

    def queue_declare(self, queue, **settings):
        self.calls.append(("declare", queue))
        return SimpleNamespace(method=SimpleNamespace(message_count=len(self.queue)))


POISON = [
    dead(b"\xff\xfe not text", "b.1", reason="rejected", queue="task_queue", time=REJECTED_AT),
    dead(b"Long......", "b.2", reason="delivery_limit", queue="task_queue"),
    dead(b"who knows", "b.3"),
]


def test_listing_says_why_where_and_when_each_task_died_and_takes_none_away(capsys):
    channel = FakeChannel(POISON)
    dead_letters.list_dead_letters(channel, 3)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"3 tasks in {DEAD_LETTER_QUEUE}:",
        "   1. b'\\xff\\xfe not text': a worker rejected it (not valid UTF-8 text), in task_queue"
        " at 2026-05-04 21:04:05 (id b.1)",
        "   2. b'Long......': delivered too many times without an acknowledgement, in task_queue (id b.2)",
        "   3. b'who knows': unknown reason, in ? (id b.3)",
        "Put them back in task_queue with: scripts/dead-letters.sh requeue",
    ]
    assert not [call for call in channel.calls if call[0] in ("ack", "publish")]


def test_listing_an_empty_queue_says_so(capsys):
    dead_letters.list_dead_letters(FakeChannel([]), 0)
    assert capsys.readouterr().out == f"{DEAD_LETTER_QUEUE} is empty.\n"


def test_listing_stops_where_the_queue_ends_when_it_held_fewer_than_counted(capsys):
    dead_letters.list_dead_letters(FakeChannel(POISON[:1]), 2)  # another client took one meanwhile
    out = capsys.readouterr().out
    assert "   1. " in out and "   2. " not in out


def test_requeue_publishes_each_task_to_task_queue_with_confirms_before_acknowledging_it(capsys):
    channel = FakeChannel(POISON[:2])
    dead_letters.requeue(channel, 2, [])
    assert channel.calls == [
        ("confirm",),
        ("declare", QUEUE),
        ("get", DEAD_LETTER_QUEUE),
        ("publish", "", QUEUE, b"\xff\xfe not text", "b.1"),
        ("ack", 1),
        ("get", DEAD_LETTER_QUEUE),
        ("publish", "", QUEUE, b"Long......", "b.2"),
        ("ack", 2),
    ]
    assert capsys.readouterr().out == f"Moved 2 tasks from {DEAD_LETTER_QUEUE} back to {QUEUE}.\n"


def test_requeue_counts_what_it_moved_when_the_queue_held_fewer(capsys):
    channel = FakeChannel(POISON[:1])
    dead_letters.requeue(channel, 3, [])
    assert [call[0] for call in channel.calls].count("ack") == 1
    assert capsys.readouterr().out == f"Moved 1 task from {DEAD_LETTER_QUEUE} back to {QUEUE}.\n"


@pytest.fixture(autouse=True)
def handlers(monkeypatch):
    """The signal handlers main installs, kept here instead of in the test process."""
    installed = {}
    monkeypatch.setattr(dead_letters.signal, "signal", installed.__setitem__)
    return installed


def test_a_signal_resets_the_connection_and_ends_at_once_saying_what_was_moved(monkeypatch, capsys, handlers):
    reset, exits = [], []
    monkeypatch.setattr(dead_letters, "reset", reset.append)
    monkeypatch.setattr(dead_letters.os, "_exit", exits.append)
    dead_letters.end_on_signals("the connection", ["b.1"])
    handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert reset == ["the connection"] and exits == [128 + signal.SIGTERM]
    assert capsys.readouterr().err == (
        f"dead_letters.py: stopped by SIGTERM after moving 1; the others stay in {DEAD_LETTER_QUEUE}\n"
    )
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= set(handlers)


def test_main_lists_on_the_connection_it_opens(monkeypatch, capsys):
    monkeypatch.setattr(dead_letters, "connection_parameters", lambda _settings: ["rabbitmq"])
    monkeypatch.setattr(dead_letters, "open_first", lambda _parameters: FakeConnection(FakeChannel(POISON)))
    assert dead_letters.main(["list"]) == 0
    assert capsys.readouterr().out.startswith(f"3 tasks in {DEAD_LETTER_QUEUE}:")  # counted by declare


def test_main_says_why_in_one_line_when_no_broker_answers(monkeypatch, capsys):
    def no_broker(_parameters):
        raise AMQPConnectionError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(dead_letters, "connection_parameters", lambda _settings: ["rabbitmq"])
    monkeypatch.setattr(dead_letters, "open_first", no_broker)
    assert dead_letters.main(["requeue"]) == 1
    assert capsys.readouterr().err == "dead_letters.py: ConnectionRefusedError: [Errno 111] Connection refused\n"


def test_a_rejected_task_is_listed_with_the_rule_it_broke_as_the_workers_apply_it(monkeypatch):
    monkeypatch.setenv("MAX_DOTS_PER_TASK", "3")
    rejected = SimpleNamespace(headers={"x-death": [{"reason": "rejected", "queue": "task_queue"}]})
    assert dead_letters.describe_death(rejected, b"Long....") == (
        "a worker rejected it (4 units of work, more than the 3 a task may ask for), in task_queue"
    )
    assert "a valid task now: requeue it" in dead_letters.describe_death(rejected, b"Short.")
