"""The package every image shares (lab/): the topology the broker declares at start
agrees with the clients', pika's errors in words, the first broker that answers, and
the record/event schema."""

import json
import re
import socket
from pathlib import Path

import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError
from pika.exceptions import AMQPConnectionError

from lab import brokers, colours, metrics, schema, topology
from lab.brokers import short_error

ROOT = Path(__file__).resolve().parents[2]
REFUSED = AMQPConnectionError(ConnectionRefusedError(111, "Connection refused"))


def test_the_broker_declares_at_start_what_the_clients_declare():
    definitions = json.loads((ROOT / "rabbitmq/definitions.json").read_text())
    exchanges = {each["name"]: each["type"] for each in definitions["exchanges"]}
    assert exchanges == {topology.DEAD_LETTER_EXCHANGE: "fanout", topology.EVENTS_EXCHANGE: "fanout",
                         topology.CONSUMER_EVENTS_EXCHANGE: "headers"}  # fmt: skip
    queues = {queue["name"]: queue["arguments"] for queue in definitions["queues"]}
    assert queues == {
        topology.DEAD_LETTER_QUEUE: topology.DEAD_LETTER_QUEUE_ARGUMENTS,
        topology.HISTORY_STREAM: topology.HISTORY_ARGUMENTS,
        topology.CONSUMERS_STREAM: topology.CONSUMERS_ARGUMENTS,
    }
    bindings = {(each["source"], each["routing_key"], each["destination"]) for each in definitions["bindings"]}
    assert bindings == {
        (topology.DEAD_LETTER_EXCHANGE, "", topology.DEAD_LETTER_QUEUE),
        (topology.EVENTS_EXCHANGE, "", topology.HISTORY_STREAM),
        *((topology.BROKER_EVENTS_EXCHANGE, key, topology.CONSUMER_EVENTS_EXCHANGE) for key in schema.CONSUMER_EVENTS),
        (topology.CONSUMER_EVENTS_EXCHANGE, "", topology.CONSUMERS_STREAM),
    }
    # Only task_queue's consumers, and no client can publish beside the broker.
    (kept,) = [each for each in definitions["bindings"] if each["source"] == topology.CONSUMER_EVENTS_EXCHANGE]
    assert kept["arguments"] == {"x-match": "all", "vhost": "/", "queue": topology.QUEUE}
    (consumer_events,) = [each for each in definitions["exchanges"] if each["type"] == "headers"]
    assert consumer_events["internal"] is True


def test_short_error_names_the_innermost_cause():
    assert short_error(REFUSED) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_short_error_finds_the_cause_pika_wraps_in_an_attribute():
    wrapped = AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused")))
    assert short_error(wrapped) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_a_blocking_connection_skips_a_node_whose_name_does_not_resolve(monkeypatch):
    def fake_connection(parameters):
        if parameters == "dead":
            raise socket.gaierror(-2, "Name or service not known")
        return parameters

    monkeypatch.setattr(brokers.pika, "BlockingConnection", fake_connection)
    assert brokers.open_first(["dead", "alive"]) == "alive"
    with pytest.raises(socket.gaierror):
        brokers.open_first(["dead"])


RECORD = {"worker": "consumer-1", "task": "Task 1.", "message_id": "b.1", "batch": "b", "redelivered": False,
          "started": 100.0}  # fmt: skip


@pytest.mark.parametrize(
    ("item", "event", "problem"),
    [
        ({**RECORD, "event": "started"}, False, None),
        ({**RECORD, "event": "done", "finished": 101.0}, False, None),
        ({**RECORD, "event": "done"}, False, "done: no finished"),
        ({**RECORD, "event": "received"}, False, "unknown kind 'received'"),
        ({**RECORD, "event": "received", "at": 100.0}, True, None),
        ({**RECORD, "event": "cut", "reason": "stopped", "finished": 101.0, "at": 1.0}, True, None),
        ({**RECORD, "event": "started", "at": 1.0, "task": "x" * 61}, True, "started: bad task"),
        ({**RECORD, "event": "started", "worker": 7, "at": 1.0}, True, "started: bad worker"),
        ({**RECORD, "event": "started", "redelivered": "no", "at": 1.0}, True, "started: bad redelivered"),
        ({**RECORD, "event": "started", "at": float("nan")}, True, "started: bad at"),
        ({**RECORD, "event": "started", "at": 1.0, "html": "<b>"}, True, "started: unknown field 'html'"),
        ({"event": "quick", "worker": "w", "batch": "b", "count": 3, "at": 1.0}, True, None),
        ({"event": "quick", "worker": "w", "batch": "b", "count": True, "at": 1.0}, True, "quick: bad count"),
        ({"event": "attached", "worker": "w", "prefetch": 1, "at": 1.0}, True, None),
        ({**RECORD, "event": "started", "received": 99.5, "prefetch": 0}, False, None),
        ({**RECORD, "event": "done", "finished": 101.0, "prefetch": 1, "at": 101.0}, True, None),
        ({**RECORD, "event": "started", "prefetch": -1}, False, "started: bad prefetch"),
        ({**RECORD, "event": "started", "received": "soon"}, False, "started: bad received"),
        ({"event": "sending", "batch": "b", "name": "fair", "tasks": 9, "at": 1.0}, True, None),
        ({"event": "sending", "batch": "b", "name": None, "tasks": 9, "at": 1.0}, True, None),
        ({"event": "sending", "batch": "b", "name": "<b>", "tasks": "9", "at": 1.0}, True, "sending: bad tasks"),
        ({"event": "sending", "batch": "b", "name": "fair", "tasks": 9}, False, "unknown kind 'sending'"),
        ({"event": ["started"], "worker": "w"}, True, "unknown kind \"['started']\""),
        ([1, 2], True, "not an object: list"),
    ],
)
def test_records_and_events_are_checked_against_the_schema(item, event, problem):
    assert schema.problem(item, event=event) == problem


def test_a_message_id_is_the_batch_and_the_number():
    assert schema.message_id("b1", 7) == "b1.7" and schema.task_number("b1.7") == "7"


PROMETHEUS_TEXT = """# TYPE rabbitmq_detailed_queue_messages_ready gauge
rabbitmq_detailed_queue_messages_ready{vhost="/",queue="task_queue"} 12
rabbitmq_detailed_queue_messages_ready{vhost="/",queue="task_queue_copy"} 99
rabbitmq_detailed_queue_messages_unacked{vhost="/",queue="task_queue"} 3
rabbitmq_detailed_queue_messages{vhost="/",queue="task_queue"} 1.5e1
rabbitmq_detailed_queue_messages_ready{vhost="other",queue="task_queue"} 7
"""


def test_queue_figures_are_read_from_the_prometheus_text_of_the_vhost():
    assert metrics.queue_figures(PROMETHEUS_TEXT) == {
        "task_queue": {"messages_ready": 12, "messages_unacked": 3, "messages": 15},
        "task_queue_copy": {"messages_ready": 99},
    }


def test_the_alarms_in_effect_are_read_from_the_prometheus_text():
    text = "rabbitmq_alarms_free_disk_space_watermark 0\nrabbitmq_alarms_memory_used_watermark 1\n"
    assert metrics.alarms(text) == ["memory"]
    assert metrics.alarms(text.replace(" 0", " 1")) == ["disk", "memory"]
    assert metrics.alarms(PROMETHEUS_TEXT) == []


def test_the_page_colours_each_state_as_the_png_does():
    css = (ROOT / "dashboard/static/style.css").read_text()
    page = dict(re.findall(r"--(\w+): (#[0-9a-f]{6})", css.split("}", 1)[0]))
    assert {state: page[state] for state in colours.STATE_COLOURS} == colours.STATE_COLOURS
