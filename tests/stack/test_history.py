"""The lab's history, the stream lab.history, on the real broker: declared by the broker
with its retention, fed by lab.events, and read in full by every reader (a stream's
readers do not compete, as task_queue's workers do)."""

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime

import pika
import pytest

from lab.topology import (
    CONSUMER_EVENTS_EXCHANGE,
    CONSUMERS_ARGUMENTS,
    CONSUMERS_STREAM,
    EVENTS_EXCHANGE,
    HISTORY_ARGUMENTS,
    HISTORY_STREAM,
    QUEUE,
)
from labstack import ROOT


def read_stream(lab, offset, until):
    """[(offset, event)] of lab.history from OFFSET (x-stream-offset), read over AMQP 0.9.1
    as RabbitMQ's docs say (a prefetch, manual acks), until until(events) or 30 s."""
    events = []
    with lab.connect() as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)  # required: a stream refuses a consumer without one
        deliveries = channel.consume(HISTORY_STREAM, arguments={"x-stream-offset": offset}, inactivity_timeout=1)
        deadline = time.monotonic() + 30
        for method, properties, body in deliveries:
            if method is not None:
                events += [(properties.headers["x-stream-offset"], event) for event in json.loads(body)]
                channel.basic_ack(method.delivery_tag)  # credit, not deletion
            if until(events) or time.monotonic() > deadline:
                break
        channel.cancel()
    return events


def done_in(batch):
    return lambda events: {e["message_id"] for _o, e in events if e["event"] == "done" and e["batch"] == batch}


def batch_of(lab, name):
    run = json.loads((lab.timelines / f"{name}.json").read_text())
    return run["batch"]


def test_the_broker_declares_the_history_stream_with_its_retention_bound_to_lab_events(lab):
    status, stream = lab.management(f"queues/%2F/{HISTORY_STREAM}")
    assert status == 200 and stream["type"] == "stream" and stream["durable"], stream
    assert stream["arguments"] == HISTORY_ARGUMENTS
    status, bindings = lab.management(f"exchanges/%2F/{EVENTS_EXCHANGE}/bindings/source")
    assert HISTORY_STREAM in [binding["destination"] for binding in bindings]  # the dashboard's queue beside it


def test_every_reader_reads_every_event_of_a_batch_and_again(lab):
    sent = lab.send("6", "--wait", "--name", "history-six")
    assert sent.returncode == 0, sent.stderr
    batch = batch_of(lab, "history-six")
    six_done = lambda events: len(done_in(batch)(events)) == 6  # noqa: E731
    first, second = (read_stream(lab, "first", six_done) for _ in range(2))  # two readers, one after the other
    assert done_in(batch)(first) == done_in(batch)(second) == {f"{batch}.{n}" for n in range(1, 7)}
    assert [offset for offset, _e in first] == [offset for offset, _e in second]  # the same log, in order


def test_a_reader_from_a_time_gets_the_events_after_it(lab):
    early = lab.send("2", "--wait", "--name", "history-early")
    assert early.returncode == 0, early.stderr
    time.sleep(1.5)  # the broker attaches at a chunk boundary at or before the time: leave a gap
    since = datetime.now(UTC)
    late = lab.send("2", "--wait", "--name", "history-late")
    assert late.returncode == 0, late.stderr
    early_batch, late_batch = batch_of(lab, "history-early"), batch_of(lab, "history-late")
    events = read_stream(lab, since, lambda events: len(done_in(late_batch)(events)) == 2)
    assert len(done_in(late_batch)(events)) == 2
    assert not done_in(early_batch)(events)


def test_history_sh_prints_a_named_batchs_events_and_again(lab):
    name = f"history-named-{os.getpid()}"
    sent = lab.send("6", "--wait", "--name", name)
    assert sent.returncode == 0, sent.stderr
    batch = batch_of(lab, name)
    runs = [lab.script("history.sh", "--from", "first", "--batch", name) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        done = re.findall(
            rf"^ *(\d+)  [\d:.]+  consumer-\d+ +done +Task \d\. \(({re.escape(batch)}\.\d)\), ", run.stdout, re.M
        )
        assert sorted(message for _offset, message in done) == [f"{batch}.{n}" for n in range(1, 7)], run.stdout
        assert re.search(rf"send\.sh +sending +6 tasks, batch {re.escape(batch)} as {name}$", run.stdout, re.M)
    assert runs[0].stdout == runs[1].stdout  # a stream removes nothing: read again, the same


def test_the_brokers_word_on_task_queues_consumers_is_kept_in_a_stream_no_client_can_publish_to(lab):
    """A consumer of task_queue that attaches and goes (here a tutorial-style one of the test's
    own): the broker's consumer.created and consumer.deleted are in lab.consumers, through the
    internal headers exchange lab.consumer-events; other queues' consumers' (the reader's own,
    on a stream) are not, and a client's publish there is refused."""
    status, stream = lab.management(f"queues/%2F/{CONSUMERS_STREAM}")
    assert status == 200 and stream["type"] == "stream" and stream["arguments"] == CONSUMERS_ARGUMENTS, stream
    probe = f"probe-{os.getpid()}"
    with lab.connect() as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(QUEUE, lambda *_: None, consumer_tag=probe)
        channel.basic_cancel(probe)
    said = []
    with lab.connect() as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)
        deadline = time.monotonic() + 30
        for method, properties, _body in channel.consume(CONSUMERS_STREAM, arguments={"x-stream-offset": "first"},
                                                         inactivity_timeout=1):  # fmt: skip
            if method is not None:
                said.append((method.routing_key, properties.headers))
                channel.basic_ack(method.delivery_tag)
            if [key for key, headers in said if headers["consumer_tag"] == probe] == [
                "consumer.created", "consumer.deleted"] or time.monotonic() > deadline:  # fmt: skip
                break
        channel.cancel()
    assert [(key, h["consumer_tag"]) for key, h in said if h["consumer_tag"] == probe] == [
        ("consumer.created", probe), ("consumer.deleted", probe)], said  # fmt: skip
    assert {"consumer-1", "consumer-2", "consumer-3"} <= {h["consumer_tag"] for _key, h in said}  # the lab's workers
    assert all(h["queue"] == QUEUE for _key, h in said), said  # not the stream readers' own
    forged = pika.BasicProperties(headers={"queue": QUEUE, "vhost": "/", "consumer_tag": "forged"})
    with lab.connect() as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            channel.basic_publish(CONSUMER_EVENTS_EXCHANGE, "consumer.created", b"", forged)


def test_history_sh_stops_quietly_when_its_reader_does(lab):
    """history.sh | head: once head has its lines, history.sh ends at its next line, without
    a traceback (it printed BrokenPipeError's)."""
    assert lab.send("3", "--wait").returncode == 0  # lines enough to print after the first
    history = subprocess.Popen([str(ROOT / "scripts/history.sh"), "--from", "first"], cwd=ROOT, env=lab.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert history.stdout.readline().strip()
    history.stdout.close()  # as head does once it has its lines
    _out, err = history.communicate(timeout=60)
    assert history.returncode == 141 and err == "", err


def test_history_sh_refuses_a_bad_offset_with_one_line(lab):
    result = lab.script("history.sh", "--from", "yesterday")
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.startswith("history.sh: --from takes first, last, next, an offset")
        and result.stderr.count("\n") == 1
    )


def test_a_forged_message_in_the_stream_is_refused_and_counted(lab):
    with lab.connect() as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        forged = [{"event": "done", "worker": "<b>x</b>", "task": "x", "at": 1.0}]
        channel.basic_publish(EVENTS_EXCHANGE, "", json.dumps(forged).encode())
    result = lab.script("history.sh", "--from", "last")
    assert result.returncode == 0, result.stderr
    assert "<b>x</b>" not in result.stdout
    assert "message(s) in the stream were not the lab's events (refused)" in result.stderr


def test_the_stream_demo_shows_workers_sharing_and_readers_each_reading_all(lab):
    result = lab.script("demo-stream.sh", timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    side_by_side = result.stdout.split("==> The same 6 tasks, seen both ways\n", 1)[1]
    workers = re.findall(r"^  (consumer-\d+) +(\d) of 6 tasks", side_by_side, re.M)
    assert sorted(count for _worker, count in workers) == ["2", "2", "2"], side_by_side
    readers = dict(re.findall(r" {2,}(reader-\d|from first, after the batch|from next, after the batch) +(\d) of 6",
                              side_by_side))  # fmt: skip
    assert readers == {"reader-1": "6", "reader-2": "6", "reader-3": "6", "from first, after the batch": "6",
                       "from next, after the batch": "0"}, side_by_side  # fmt: skip
    # The readers that read the batch read it at the same offsets: one log, the same for everyone.
    assert len(set(re.findall(r"6 of 6, offsets (\d+-\d+)", side_by_side))) == 1, side_by_side
