"""The worker's logic that needs no broker: naming, retry policy, and how it works
and settles tasks (on a fake connection whose thread is the test's)."""

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
import worker
from lab import schema, settings
from lab import tasks as lab_tasks

LOGIN = {"RABBITMQ_DEFAULT_USER": "lab", "RABBITMQ_DEFAULT_PASS": "secret"}


def test_a_cluster_is_a_list_of_hosts_each_worker_tries_in_its_own_order():
    config = settings.read({**LOGIN, "RABBITMQ_HOSTS": "rabbitmq, rabbitmq-2,rabbitmq-3,"})
    orders = {tuple(each.host for each in broker.connection_parameters(config, "w1")) for _ in range(50)}
    assert len(orders) > 1
    assert all(sorted(order) == sorted(config.hosts) for order in orders)
    firsts = [broker.broker_order(config.hosts, f"consumer-{number}")[0] for number in range(1, 7)]
    assert firsts == list(config.hosts) * 2


def test_the_first_broker_that_answers_is_used(monkeypatch):
    config = settings.read({**LOGIN, "RABBITMQ_HOSTS": "dead,alive"})
    tried = []

    def fake_connection(parameters):
        tried.append(parameters.host)
        if parameters.host == "dead":
            raise AMQPConnectionError("refused")
        return parameters.host

    monkeypatch.setattr(broker.pika, "BlockingConnection", fake_connection)
    parameters = sorted(broker.connection_parameters(config, "w1"), key=lambda each: each.host)
    assert broker.open_first(parameters) == "alive"
    assert tried == ["alive"]
    assert broker.open_first(parameters[::-1]) == "alive"
    assert tried == ["alive", "dead", "alive"]


@pytest.mark.parametrize(
    "full_name, expected",
    [
        ("rabbitmq-lab-consumer-2.rabbitmq-lab_default.", "consumer-2"),
        ("lab-test-4711-consumer-13.lab-test-4711_default.", "consumer-13"),
        ("36af0492e410.", None),
    ],
)
def test_replica_name_from_compose_container_name(full_name, expected):
    assert broker.replica_name(full_name) == expected


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

    def __init__(self, sent):
        self.sent, self.is_open = sent, True

    def basic_publish(self, exchange, routing_key, body, _properties):
        self.sent.append(("publish", exchange, routing_key, json.loads(body)))

    def basic_ack(self, delivery_tag):
        self.sent.append(("ack", delivery_tag))

    def basic_reject(self, delivery_tag, requeue):
        self.sent.append(("reject", delivery_tag, requeue))

    def tx_select(self):
        pass

    def tx_commit(self):
        self.sent.append(("commit",))

    def exchange_declare(self, *_args, **_kwargs):
        pass


class FakeConnection:
    """The connection's thread is the test's: what other threads hand it waits in `scheduled`."""

    def __init__(self):
        self.sent, self.scheduled, self.is_open = [], queue.Queue(), True

    def channel(self):
        return FakeChannel(self.sent)

    def add_callback_threadsafe(self, callback):
        self.scheduled.put(callback)

    def add_on_connection_blocked_callback(self, _callback):
        pass

    add_on_connection_unblocked_callback = add_on_connection_blocked_callback

    def run_next(self, timeout=5):
        """Run the next callback the work thread handed over, on this (the connection's) thread."""
        self.scheduled.get(timeout=timeout)()

    def process_data_events(self, time_limit=0):
        while not self.scheduled.empty():
            self.run_next()


def session_of(seconds_per_dot="0.05", **env):
    connection = FakeConnection()
    read = settings.read({**LOGIN, "SECONDS_PER_DOT": seconds_per_dot, **env})
    session = worker.Session(connection, read, "w1", threading.Event())
    channel = FakeChannel(connection.sent)
    connection.sent.clear()  # the events' "attached"

    def deliver(tag, body, reply_to="records.b"):
        method = SimpleNamespace(delivery_tag=tag, redelivered=False)
        properties = SimpleNamespace(message_id=f"b.{tag}", correlation_id="b", reply_to=reply_to)
        session.callback(channel, method, properties, body)

    return session, connection, deliver


def kinds(sent):
    return [item[0] if item[0] != "publish" else (item[1] or item[2], item[3][0]["event"]) for item in sent]


def test_a_task_is_received_done_then_acked_on_the_connections_thread_its_record_committed_first(capsys):
    session, connection, deliver = session_of()
    deliver(1, b"Slow..")  # 0.1 s of work
    assert kinds(connection.sent) == [("lab.events", "received")]
    connection.run_next()  # "started": a record for send.sh --wait and an event for the dashboard
    connection.run_next()  # the work thread handed the ack back: nothing was sent from it
    started = [("records.b", "started"), "commit", ("lab.events", "started")]
    assert kinds(connection.sent)[1:] == [*started, ("records.b", "done"), "commit", "ack", ("lab.events", "done")]
    assert connection.sent[-2] == ("ack", 1)
    done = connection.sent[4][3][0]
    assert done["finished"] - done["started"] >= 0.1 and done["received"] <= done["started"]
    assert schema.problem(done, event=False) is None and done["prefetch"] == 1
    assert capsys.readouterr().out.splitlines() == ["[x] Received 'Slow..' (w1)", "[x] Done 'Slow..' (w1, 0.1 s)"]


def test_a_task_with_no_work_prints_the_tutorials_lines_too_and_is_counted_for_the_dashboard(capsys):
    session, connection, deliver = session_of()
    deliver(1, b"Hello World!")  # done in the callback itself: nothing else in hand
    assert kinds(connection.sent) == [("records.b", "done"), "commit", "ack"]  # its event waits for the tick
    done = connection.sent[0][3][0]
    assert done["finished"] == done["started"] and "received" not in done
    session.events.tick()
    quick = connection.sent[-1][3][0]
    assert (quick["event"], quick["batch"], quick["count"], quick["worker"]) == ("quick", "b", 1, "w1")
    assert capsys.readouterr().out.splitlines() == ["[x] Received 'Hello World!' (w1)",
                                                    "[x] Done 'Hello World!' (w1, 0.0 s)"]  # fmt: skip


def test_a_task_that_names_no_queue_for_records_is_only_acked():
    _session, connection, deliver = session_of()
    deliver(1, b"Quick", reply_to=None)
    assert connection.sent == [("ack", 1)]


def test_a_task_with_no_work_behind_one_with_work_waits_its_turn_in_the_work_thread(capsys):
    _session, connection, deliver = session_of()
    deliver(1, b"Slow.", reply_to=None)
    deliver(2, b"Quick", reply_to=None)
    assert "ack" not in kinds(connection.sent)  # neither done yet
    for _callback in ("started 1", "ack 1", "ack 2"):
        connection.run_next()
    assert [item for item in connection.sent if item[0] == "ack"] == [("ack", 1), ("ack", 2)]
    assert [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()] == [
        "[x] Received 'Slow.'", "[x] Done 'Slow.'", "[x] Received 'Quick'", "[x] Done 'Quick'"
    ]  # fmt: skip


def test_a_poison_task_is_rejected_at_once_its_record_committed_first(capsys):
    _session, connection, deliver = session_of(MAX_DOTS_PER_TASK="3")
    deliver(1, b"\xff")
    deliver(2, b"Four....")
    assert kinds(connection.sent) == [("records.b", "rejected"), "commit", "reject", ("lab.events", "rejected")] * 2
    assert connection.sent[2] == ("reject", 1, False)
    assert connection.sent[4][3][0]["reason"] == "4 units of work, more than the 3 a task may ask for"
    assert capsys.readouterr().out.startswith("[!] Rejected b'\\xff' (w1): not valid UTF-8 text; to the dead-letter")


def test_tasks_are_worked_one_at_a_time_in_delivery_order(capsys):
    _session, connection, deliver = session_of()
    for tag in (1, 2, 3):
        deliver(tag, f"Task {tag}.".encode())
    for _ in range(6):
        connection.run_next()
    assert [item[1] for item in connection.sent if item[0] == "ack"] == [1, 2, 3]
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in out] == [f"[x] {kind} 'Task {n}.'" for n in (1, 2, 3) for kind in
                                                     ("Received", "Done")]  # fmt: skip


def test_a_session_ending_during_the_work_hands_the_task_back_with_a_cut_record(capsys):
    session, connection, deliver = session_of(seconds_per_dot="60")
    deliver(1, b"Long.")
    connection.run_next()  # started
    session.end()  # the connection lost, say: the work stops at once
    cut = [("records.b", "cut"), "commit", ("lab.events", "cut")]
    assert kinds(connection.sent)[-4:] == [*cut, ("lab.events", "leaving")]
    assert connection.sent[-4][3][0]["reason"] == "its delivery was lost with the channel"
    assert "ack" not in kinds(connection.sent)
    assert "[!] Handed back 'Long.' (w1): its delivery was lost with the channel" in capsys.readouterr().out


def test_a_task_not_started_when_the_worker_stops_is_left_to_go_back_to_the_queue():
    session, connection, deliver = session_of(seconds_per_dot="0.2")
    deliver(1, b"First.")
    deliver(2, b"Second.")
    connection.run_next()  # the first started
    session.stopping.set()
    session.finish_task_in_hand()  # lets the first finish and be acked
    session.end()
    assert [item for item in connection.sent if item[0] == "ack"] == [("ack", 1)]
    assert [item[3][0]["message_id"] for item in connection.sent if item[0] == "publish"
            and item[2] == "records.b"] == ["b.1", "b.1"]  # started and done; nothing of the second  # fmt: skip


def test_a_task_the_broker_took_back_is_not_acknowledged(capsys):
    """RabbitMQ 4.3 cancels the consumer of a task held past the consumer timeout, keeps the
    channel open and gives the task to another worker: an ack now would settle the other's delivery."""
    session, connection, deliver = session_of(seconds_per_dot="0.05")
    deliver(1, b"Long....")
    session.why_over = "its task timed out"  # while the work thread works
    connection.run_next()  # started
    connection.run_next()
    assert "ack" not in kinds(connection.sent)
    cut = next(item[3][0] for item in connection.sent if item[0] == "publish" and item[3][0]["event"] == "cut")
    assert cut["event"] == "cut"
    assert cut["reason"] == "not acknowledged: the broker took it back first (its task timed out)"
    assert "[!] Not acknowledged 'Long....' (w1): the broker took it back first" in capsys.readouterr().out


def test_tasks_with_no_work_get_their_lines_ten_a_second_and_a_sum_for_the_rest(monkeypatch, capsys):
    clock = [100.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    lines = worker.QuickTaskLines("w1")
    for number in range(1, 26):
        lines.received(f"[x] Received 'Task {number}'", quick=True)
        lines.done(f"[x] Done 'Task {number}'")
    lines.summary()  # not a second yet
    assert capsys.readouterr().out.splitlines()[-2:] == ["[x] Received 'Task 10'", "[x] Done 'Task 10'"]
    clock[0] += 1
    lines.summary()
    lines.received("[x] Received 'Slow.'", quick=False)  # a task with work always has its lines
    assert capsys.readouterr().out.splitlines() == ["[x] ... and 15 more tasks with no work done (w1)",
                                                    "[x] Received 'Slow.'"]  # fmt: skip


def test_the_waiting_line_says_the_worker_runs_until_stopped(capsys):
    read = settings.read(LOGIN)
    connection = FakeConnection()
    channel = FakeChannel(connection.sent)
    channel.queue_declare = channel.basic_qos = channel.basic_consume = lambda *_args, **_kwargs: None
    channel.start_consuming = channel.stop_consuming = lambda: None
    connection.channel = lambda: channel
    connection.call_later = lambda *_args: None
    stopping = threading.Event()
    stopping.set()
    worker.consume(connection, read, "consumer-2", stopping)
    assert capsys.readouterr().out.splitlines()[0] == (
        "[*] consumer-2 waiting for tasks on task_queue (prefetch 1); it runs until stopped. To exit press CTRL+C"
    )


WRONG_TYPE = ChannelClosedByBroker(
    406,
    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'task_queue' in vhost '/': "
    "received 'quorum' but current is 'classic'",
)


def test_a_task_queue_of_another_type_is_told_in_one_line_with_the_fix():
    assert broker.is_wrong_queue_type(WRONG_TYPE)
    assert not broker.is_wrong_queue_type(ChannelClosedByBroker(406, "PRECONDITION_FAILED - delivery acknowledgement"))
    line = broker.wrong_queue_type("w1", WRONG_TYPE)
    assert "\n" not in line
    assert "received 'quorum' but current is 'classic'" in line and "docker compose down -v" in line
