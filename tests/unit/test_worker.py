"""The worker's logic that needs no broker: configuration, naming, retry policy, and how
it settles tasks (on a fake channel)."""

import json
import logging
import queue
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import tenacity
from pika.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAuthenticationError,
    StreamLostError,
)

import broker
import settlement
import supervisor
import tasks
import worker
from lab import schema
from lab import tasks as lab_tasks
from settings import Config, ConfigError, replica_name

LOGIN = {"RABBITMQ_DEFAULT_USER": "lab", "RABBITMQ_DEFAULT_PASS": "secret", "WORKER_NAME": "w1"}


def test_config_defaults():
    config = Config.from_env(LOGIN)
    assert (config.hosts, config.port, config.prefetch, config.seconds_per_dot) == (("rabbitmq",), 5672, 1, 1.0)
    assert (config.user, config.password, config.worker_name) == ("lab", "secret", "w1")


def test_a_cluster_is_a_list_of_hosts_each_worker_tries_in_its_own_order():
    config = Config.from_env({**LOGIN, "RABBITMQ_HOSTS": "rabbitmq, rabbitmq-2,rabbitmq-3,"})
    assert config.hosts == ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
    orders = {tuple(each.host for each in broker.connection_parameters(config)) for _ in range(50)}
    assert len(orders) > 1
    assert all(sorted(order) == sorted(config.hosts) for order in orders)
    firsts = [broker.broker_order(config.hosts, f"consumer-{number}")[0] for number in range(1, 7)]
    assert firsts == list(config.hosts) * 2


def test_the_first_broker_that_answers_is_used(monkeypatch):
    config = Config.from_env({**LOGIN, "RABBITMQ_HOSTS": "dead,alive"})
    tried = []

    def fake_connection(parameters):
        tried.append(parameters.host)
        if parameters.host == "dead":
            raise AMQPConnectionError("refused")
        return parameters.host

    monkeypatch.setattr(broker.pika, "BlockingConnection", fake_connection)
    parameters = sorted(broker.connection_parameters(config), key=lambda each: each.host)
    assert broker.open_first(parameters) == "alive"
    assert tried == ["alive"]
    assert broker.open_first(parameters[::-1]) == "alive"
    assert tried == ["alive", "dead", "alive"]


def test_config_reads_the_knobs():
    config = Config.from_env({**LOGIN, "PREFETCH": "0", "SECONDS_PER_DOT": "0.05", "STOP_GRACE_SECONDS": "4"})
    assert (config.prefetch, config.seconds_per_dot, config.stop_grace_seconds) == (0, 0.05, 4.0)


@pytest.mark.parametrize(
    "name, value",
    [
        ("PREFETCH", "-1"),
        ("PREFETCH", "1.5"),
        ("PREFETCH", "many"),
        ("SECONDS_PER_DOT", "-0.1"),
        ("SECONDS_PER_DOT", "nan"),
        ("RABBITMQ_PORT", "0"),
    ],
)
def test_config_rejects_bad_values_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=f"^{name} must be .*got '{value}'"):
        Config.from_env({**LOGIN, name: value})


@pytest.mark.parametrize("missing", ["RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"])
def test_config_requires_the_login(missing):
    env = {key: value for key, value in LOGIN.items() if key != missing}
    with pytest.raises(ConfigError, match=f"{missing} is not set"):
        Config.from_env(env)


@pytest.mark.parametrize(
    "full_name, expected",
    [
        ("rabbitmq-lab-consumer-2.rabbitmq-lab_default.", "consumer-2"),
        ("lab-test-4711-consumer-13.lab-test-4711_default.", "consumer-13"),
        ("36af0492e410.", None),
    ],
)
def test_replica_name_from_compose_container_name(full_name, expected):
    assert replica_name(full_name) == expected


def test_work_is_one_unit_per_dot():
    assert tasks.work_seconds("First task....", 0.5) == 2.0
    assert tasks.work_seconds("no work", 1) == 0


# What pika 1.4.4's BlockingConnection raises (checked against a real broker).
REFUSED = AMQPConnectionError(ConnectionRefusedError(111, "Connection refused"))
BAD_LOGIN = ProbableAuthenticationError("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED - Login was refused'")
BAD_LOGIN_CLOSE = AMQPConnectionError(ConnectionClosedByBroker(403, "ACCESS_REFUSED - Login was refused"))
BROKER_RESTART = ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure")


@pytest.mark.parametrize(
    "error, retry",
    [
        (REFUSED, True),
        (BROKER_RESTART, True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (StreamLostError("Transport indicated EOF"), True),
        (BAD_LOGIN, False),
        (BAD_LOGIN_CLOSE, False),
        (ConnectionClosedByBroker(530, "NOT_ALLOWED"), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_only_what_waiting_can_fix(error, retry):
    assert broker.is_worth_retrying(error) is retry


def run_policy(failures, caplog):
    """Run the connect retry policy against a connect that fails with each of `failures` in turn."""
    outcomes = iter(failures)
    waits = []

    def connect():
        error = next(outcomes, None)
        if error:
            raise error
        return "connection"

    stop = threading.Event()
    policy = broker.connection_retrying(stop, "rabbitmq:5672")
    policy.sleep = waits.append  # record the waits instead of waiting
    with caplog.at_level(logging.WARNING, logger="worker"):
        return policy(connect), waits


def test_retry_policy_waits_with_capped_jittered_backoff_and_logs_each_wait(caplog):
    result, waits = run_policy([REFUSED] * 12, caplog)
    assert result == "connection"
    assert len(waits) == 12 and all(0 <= wait <= broker.RETRY_MAX_WAIT_SECONDS for wait in waits)
    assert len(set(waits)) > 1  # jitter
    assert len(caplog.records) == 12
    assert "rabbitmq:5672 not reachable (ConnectionRefusedError" in caplog.records[0].getMessage()
    assert "(attempt 12)" in caplog.records[-1].getMessage()


def test_retry_policy_gives_up_at_once_on_a_refused_login(caplog):
    with pytest.raises(ProbableAuthenticationError):
        run_policy([REFUSED, BAD_LOGIN], caplog)
    assert len(caplog.records) == 1


def test_retry_policy_stops_waiting_when_asked_to_stop():
    stop = threading.Event()
    policy = broker.connection_retrying(stop, "rabbitmq:5672")
    policy.wait = tenacity.wait_fixed(60)  # a wait only the stop can cut short within the test
    timer = threading.Timer(0.2, stop.set)

    def never_connects():
        raise REFUSED

    started = time.monotonic()
    timer.start()
    with pytest.raises(AMQPConnectionError):
        policy(never_connects)
    assert time.monotonic() - started < 5  # the wait ended at the stop, and no other began
    timer.join()


def test_heartbeat_is_the_brokers_unless_set():
    assert Config.from_env(LOGIN).heartbeat_seconds is None
    assert Config.from_env({**LOGIN, "HEARTBEAT_SECONDS": "5"}).heartbeat_seconds == 5


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not text", "not valid UTF-8 text"),
        (b"  ", "an empty task"),
        (b"Task" + b"." * 11, "11 units of work, more than the 10 a task may ask for"),
    ],
)
def test_poison_tasks_are_refused_with_the_reason(body, reason):
    with pytest.raises(lab_tasks.PoisonTask, match=reason):
        lab_tasks.read_task(body, max_dots=10)


def test_a_task_is_its_utf8_text():
    assert lab_tasks.read_task("Tâche ...".encode(), max_dots=10) == "Tâche ..."


class FakeChannel:
    """Records, in order, what a worker sends on its channels (to one shared list)."""

    def __init__(self, sent=None):
        self.sent = [] if sent is None else sent

    def basic_publish(self, exchange, routing_key, body, _properties):
        self.sent.append(("publish", exchange, routing_key, json.loads(body)))

    def basic_ack(self, tag, multiple=False):
        self.sent.append(("ack", tag, multiple))

    def basic_reject(self, tag, requeue):
        self.sent.append(("reject", tag, requeue))

    def tx_commit(self):
        self.sent.append(("commit",))

    def basic_qos(self, prefetch_count):
        self.sent.append(("qos", prefetch_count))


def fake_session(connection=None):
    connection = connection or SimpleNamespace(add_callback_threadsafe=lambda _callback: None)
    channel = FakeChannel()
    return settlement.Session(connection=connection, channel=channel, records=FakeChannel(channel.sent))


def session_of(seconds_per_dot="1"):
    lab_worker = worker.Worker(Config.from_env({**LOGIN, "SECONDS_PER_DOT": seconds_per_dot}))
    session = fake_session()
    deliveries = queue.Queue()

    def deliver(tag, body, reply_to="records.b"):
        method = SimpleNamespace(delivery_tag=tag, redelivered=False)
        properties = SimpleNamespace(message_id=f"b.{tag}", correlation_id="b", reply_to=reply_to)
        lab_worker.on_delivery(session, deliveries, None, method, properties, body)

    return session, deliveries, deliver


def test_a_group_of_deliveries_is_settled_records_committed_first_in_one_message_and_one_write(capsys):
    session, deliveries, deliver = session_of()
    deliver(1, b"Quick")  # no dots: no work
    deliver(2, b"Slow..")  # two seconds: for the work thread
    deliver(3, b"\xff")  # poison
    assert session.channel.sent == [] and capsys.readouterr().out == ""  # nothing before the group is settled
    session.settle()
    (publish, exchange, queue_name, records), commit, *settlements = session.channel.sent
    assert (publish, exchange, queue_name) == ("publish", "", "records.b")  # to the queue the tasks named
    assert [(r["event"], r["message_id"]) for r in records] == [("done", "b.1"), ("rejected", "b.3")]
    assert records[0]["worker"] == "w1" and records[0]["finished"] == records[0]["started"]
    assert commit == ("commit",)
    # After their records are committed; then a round trip proves the broker took them.
    assert settlements == [("reject", 3, False), ("ack", 1, True), ("qos", 1)]
    assert capsys.readouterr().out.splitlines() == [
        "[x] Done 'Quick' (w1, 0.0 s)",
        "[!] Rejected b'\\xff' (w1): not valid UTF-8 text; to the dead-letter queue",
    ]
    task = deliveries.get_nowait()
    assert (task.delivery_tag, task.reply_to, task.text, task.seconds) == (2, "records.b", "Slow..", 2.0)
    session.settle()
    assert len(session.channel.sent) == 5  # nothing left to settle: nothing sent


def test_every_record_says_the_workers_prefetch_and_a_task_with_work_when_it_arrived():
    session, deliveries, deliver = session_of()
    deliver(1, b"Quick")
    deliver(2, b"Slow..")
    session.settle()
    (_, _, _, records), *_ = session.channel.sent
    assert records[0]["prefetch"] == 1 and "received" not in records[0]  # no wait in a buffer: no work
    task = deliveries.get_nowait()
    assert task.record["prefetch"] == 1 and task.record["received"] == task.record["started"]
    assert schema.problem({"event": "started", **task.record}, event=False) is None


def test_one_multiple_ack_only_when_no_earlier_task_is_still_in_hand():
    session, deliveries, deliver = session_of()
    for tag, body in enumerate([b"Slow.", b"Quick", b"Quick"], start=1):
        deliver(tag, body)
    session.settle()
    assert session.channel.sent[2:4] == [("ack", 2, False), ("ack", 3, False)]  # task 1 is still in the work
    deliver(4, b"Quick")
    session.add("records.b", {"event": "done", "message_id": "b.1", "started": 1.0, "finished": 2.0}, 1)
    session.settle()  # the work thread finished task 1
    assert session.channel.sent[-2] == ("ack", 4, True)  # 1 and 4 at once


def test_a_task_that_names_no_queue_for_records_gets_none():
    session, _deliveries, deliver = session_of()
    deliver(1, b"Quick", reply_to=None)
    session.settle()
    assert session.channel.sent == [("ack", 1, True)]  # and no commit to wait for


def test_the_work_thread_asks_for_one_settle_for_what_it_adds_meanwhile():
    scheduled = []
    connection = SimpleNamespace(add_callback_threadsafe=scheduled.append)
    session = fake_session(connection)
    session.tell("records.b", {"event": "started", "message_id": "b.1"})
    session.tell("records.b", {"event": "done", "message_id": "b.1"}, 1, "[x] Done")
    assert scheduled == [session.settle]
    session.settle()
    session.tell("records.b", {"event": "started", "message_id": "b.2"})
    assert scheduled == [session.settle, session.settle]


def test_tasks_with_no_work_get_ten_lines_a_second_and_a_sum_for_the_rest(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(tasks.time, "monotonic", lambda: clock[0])
    quick = tasks.QuickTasksLog("w1")
    lines = [quick.line(f"Task {n}") for n in range(1, 26)]
    assert lines[:10] == [f"[x] Done 'Task {n}' (w1, 0.0 s)" for n in range(1, 11)]
    assert lines[10:] == [None] * 15
    assert quick.summary() is None  # not a second yet
    clock[0] += 1
    assert quick.summary() == "[x] ... and 15 more tasks with no work done (w1)"
    assert quick.line("Task 26") == "[x] Done 'Task 26' (w1, 0.0 s)"  # a new second
    clock[0] += 1
    assert quick.summary() is None  # nothing left out


class ClosedChannel(FakeChannel):
    """A consuming channel the broker closed (say, after a delivery timeout) before the ack arrived."""

    def basic_qos(self, prefetch_count):
        raise ChannelClosedByBroker(406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out")


def test_a_task_whose_ack_did_not_reach_the_broker_is_not_reported_done(capsys):
    records = FakeChannel()
    session = settlement.Session(connection=None, channel=ClosedChannel(), records=records)
    done = {"event": "done", "worker": "w1", "task": "Long....", "message_id": "b.1", "started": 1.0, "finished": 5.0}
    session.add("records.b", done, 7, "[x] Done 'Long....' (w1, 4.0 s)")
    with pytest.raises(ChannelClosedByBroker):
        session.settle()
    published = [record for sent in records.sent if sent[0] == "publish" for record in sent[3]]
    assert [record["event"] for record in published] == ["done", "cut"]  # the "done" is taken back
    assert "the broker closed the channel first" in published[1]["reason"]
    out = capsys.readouterr().out
    assert "[x] Done" not in out
    assert out.startswith("[!] Not acknowledged 'Long....' (w1): the broker closed the channel first")


def test_a_task_the_broker_took_back_is_not_acknowledged_nor_reported_done(capsys):
    """RabbitMQ 4.3 cancels the consumer of a task held past the consumer timeout, keeps the
    channel open and gives the task to another worker: an ack now would settle the other's delivery."""
    channel, records = FakeChannel(), FakeChannel()
    session = settlement.Session(connection=None, channel=channel, records=records)
    session.taken_back = "its task timed out"
    done = {"event": "done", "worker": "w1", "task": "Long....", "message_id": "b.1", "started": 1.0, "finished": 5.0}
    session.add("records.b", done, 7, "[x] Done 'Long....' (w1, 4.0 s)")
    session.settle()
    assert not [sent for sent in channel.sent if sent[0] == "ack"]
    published = [record for sent in records.sent if sent[0] == "publish" for record in sent[3]]
    assert [record["event"] for record in published] == ["done", "cut"]
    assert published[1]["reason"] == "not acknowledged: the broker took it back first (its task timed out)"
    out = capsys.readouterr().out
    assert "[x] Done" not in out and out.startswith("[!] Not acknowledged 'Long....' (w1): the broker took it back")


WRONG_TYPE = ChannelClosedByBroker(
    406,
    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'task_queue' in vhost '/': "
    "received 'quorum' but current is 'classic'",
)


def test_a_task_queue_of_another_type_is_told_in_one_line_with_the_fix():
    assert broker.is_wrong_queue_type(WRONG_TYPE)
    assert not broker.is_wrong_queue_type(ChannelClosedByBroker(406, "PRECONDITION_FAILED - delivery acknowledgement"))
    line = supervisor.wrong_queue_type("w1", WRONG_TYPE)
    assert "\n" not in line
    assert "received 'quorum' but current is 'classic'" in line and "docker compose down -v" in line


def test_the_dot_limit_is_a_setting():
    assert Config.from_env(LOGIN).max_dots == 3600
    assert Config.from_env({**LOGIN, "MAX_DOTS_PER_TASK": "10"}).max_dots == 10
