"""The worker's logic that needs no broker: configuration, naming, retry policy."""

import logging
import socket
import threading

import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError
from pika.exceptions import (
    AMQPConnectionError,
    ConnectionClosedByBroker,
    ProbableAuthenticationError,
    StreamLostError,
)

import worker

LOGIN = {"RABBITMQ_DEFAULT_USER": "lab", "RABBITMQ_DEFAULT_PASS": "secret", "WORKER_NAME": "w1"}


def test_config_defaults():
    config = worker.Config.from_env(LOGIN)
    assert (config.host, config.port, config.prefetch, config.seconds_per_dot) == ("rabbitmq", 5672, 1, 1.0)
    assert (config.user, config.password, config.worker_name) == ("lab", "secret", "w1")


def test_config_reads_the_knobs():
    config = worker.Config.from_env({**LOGIN, "PREFETCH": "0", "SECONDS_PER_DOT": "0.05", "STOP_GRACE_SECONDS": "4"})
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
    with pytest.raises(worker.ConfigError, match=f"^{name} must be .*got '{value}'"):
        worker.Config.from_env({**LOGIN, name: value})


@pytest.mark.parametrize("missing", ["RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"])
def test_config_requires_the_login(missing):
    env = {key: value for key, value in LOGIN.items() if key != missing}
    with pytest.raises(worker.ConfigError, match=f"{missing} is not set"):
        worker.Config.from_env(env)


@pytest.mark.parametrize(
    "full_name, expected",
    [
        ("rabbitmq-lab-consumer-2.rabbitmq-lab_default.", "consumer-2"),
        ("lab-test-4711-consumer-13.lab-test-4711_default.", "consumer-13"),
        ("36af0492e410.", None),
    ],
)
def test_replica_name_from_compose_container_name(full_name, expected):
    assert worker.replica_name(full_name) == expected


def test_work_is_one_unit_per_dot():
    assert worker.work_seconds("First task....", 0.5) == 2.0
    assert worker.work_seconds("no work", 1) == 0


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
    assert worker.is_worth_retrying(error) is retry


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
    policy = worker.connection_retrying(stop, "rabbitmq:5672")
    policy.sleep = waits.append  # record the waits instead of waiting
    with caplog.at_level(logging.WARNING, logger="worker"):
        return policy(connect), waits


def test_retry_policy_waits_with_capped_jittered_backoff_and_logs_each_wait(caplog):
    result, waits = run_policy([REFUSED] * 12, caplog)
    assert result == "connection"
    assert len(waits) == 12 and all(0 <= wait <= worker.RETRY_MAX_WAIT_SECONDS for wait in waits)
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
    policy = worker.connection_retrying(stop, "rabbitmq:5672")
    timer = threading.Timer(0.2, stop.set)
    timer.start()

    def never_connects():
        raise REFUSED

    with pytest.raises(AMQPConnectionError):
        policy(never_connects)
    assert stop.is_set()
    timer.join()


def test_short_error_names_the_innermost_cause():
    assert worker.short_error(REFUSED) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_short_error_finds_the_cause_pika_wraps_in_an_attribute():
    wrapped = AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused")))
    assert worker.short_error(wrapped) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_heartbeat_is_the_brokers_unless_set():
    assert worker.Config.from_env(LOGIN).heartbeat_seconds is None
    assert worker.Config.from_env({**LOGIN, "HEARTBEAT_SECONDS": "5"}).heartbeat_seconds == 5


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not text", "not valid UTF-8 text"),
        (b"  ", "an empty task"),
        (b"Task" + b"." * (worker.MAX_DOTS + 1), f"more than the {worker.MAX_DOTS}"),
    ],
)
def test_poison_tasks_are_refused_with_the_reason(body, reason):
    with pytest.raises(worker.PoisonTask, match=reason):
        worker.read_task(body)


def test_a_task_is_its_utf8_text():
    assert worker.read_task("Tâche ...".encode()) == "Tâche ..."
