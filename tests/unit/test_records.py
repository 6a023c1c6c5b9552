"""Collecting records: when task_queue counts as idle (no broker needed)."""

import json
from types import SimpleNamespace

from pika.exceptions import StreamLostError

import connection as producer_connection
import records
from example_runs import BATCH, record, started
from fake_records import FakeConnection, RecordsChannel, connections


def test_the_queue_counts_as_idle_only_after_looking_idle_for_a_while(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(records.time, "monotonic", lambda: clock[0])
    answers = iter([True, True, False, True, True, True])
    idle = records.SustainedIdle(lambda: next(answers))
    seen = []
    for _ in range(6):
        seen.append(idle())
        clock[0] += records.IDLE_FOR_SECONDS / 2
    assert seen == [False, False, False, False, False, True]  # the False in between starts the wait again


def collect(monkeypatch, count, *channels, timeout=5):
    """What EventListener.collect returns, and the done counts it reports, on these fake connections."""
    monkeypatch.setattr(records, "open_first", connections(*channels))

    def without_waits(what):
        return producer_connection.reconnecting(what).copy(sleep=lambda _seconds: None)

    monkeypatch.setattr(records, "reconnecting", without_waits)
    reported = []
    events, ended = records.EventListener(None, BATCH).collect(count, timeout, lambda _e, done: reported.append(done))
    return events, ended, reported


def test_collecting_ends_once_count_tasks_are_done_or_rejected(monkeypatch):
    first = [started(record(1, "w1", 1, 2)), record(1, "w1", 1, 2)]
    rejected = {**record(2, "w2", 1, 1), "event": "rejected"}
    channel = RecordsChannel([first, [rejected], [record(3, "w1", 2, 3)]])
    events, ended, reported = collect(monkeypatch, 2, channel)
    assert ended == "finished"
    assert events == [*first, rejected] and reported == [0, 1, 2]
    assert channel.acked == [1, 2]  # the third message is not taken


def test_a_done_taken_back_by_a_cut_does_not_count(monkeypatch):
    done = record(1, "w1", 1, 2)
    taken_back = {**done, "event": "cut"}
    again = record(1, "w2", 3, 4, redelivered=True)
    events, ended, reported = collect(monkeypatch, 1, RecordsChannel([[done, taken_back], [again]]))
    assert ended == "finished" and events == [done, taken_back, again]
    assert reported == [1, 0, 1]


def test_records_delivered_again_after_a_lost_connection_count_once(monkeypatch):
    one, two = record(1, "w1", 1, 2), record(2, "w2", 1, 2)
    lost = RecordsChannel([[one]], then=StreamLostError("Transport indicated EOF"))
    again = RecordsChannel([[one], [two]])  # its acknowledgement was lost with the connection
    events, ended, reported = collect(monkeypatch, 2, lost, again)
    assert ended == "finished" and events == [one, two] and reported == [1, 2]


def test_records_of_other_batches_are_ignored(monkeypatch):
    mine = [record(1, "w1", 1, 2), record(2, "w1", 2, 3)]
    others = [{**record(n, "w2", 1, 2), "batch": "b0", "message_id": f"b0.{n}"} for n in (1, 2)]
    events, ended, reported = collect(monkeypatch, 2, RecordsChannel([[others[0], mine[0]], [others[1]], [mine[1]]]))
    assert ended == "finished" and events == mine and reported == [1, 2]


def test_collecting_times_out_with_what_came(monkeypatch):
    one = record(1, "w1", 1, 2)
    events, ended, _reported = collect(monkeypatch, 2, RecordsChannel([[one]]), timeout=0)
    assert ended == "timed out" and events == [one]


def reads_per_record(monkeypatch, count):
    """How often collect reads a field of a record, on average, for `count` records one per message."""
    reads = [0]

    class Counted(dict):
        def __getitem__(self, key):
            reads[0] += 1
            return super().__getitem__(key)

        def get(self, key, default=None):
            reads[0] += 1
            return super().get(key, default)

    monkeypatch.setattr(records, "json", SimpleNamespace(loads=lambda body: json.loads(body, object_hook=Counted)))
    collect(monkeypatch, count, RecordsChannel([[record(n, "w1", n, n)] for n in range(1, count + 1)]))
    return reads[0] / count


def test_collecting_reads_each_record_a_bounded_number_of_times_however_many_came_before(monkeypatch):
    few, many = reads_per_record(monkeypatch, 100), reads_per_record(monkeypatch, 1000)
    assert many <= few + 1  # reading every earlier record again at each new one makes it ten times as many


def test_the_broker_saying_task_queue_was_deleted_or_another_consumer_attached_is_heard(monkeypatch):
    one = record(1, "w1", 1, 2)
    events = [
        ("consumer.created", {"vhost": b"/", "queue": b"task_queue", "consumer_tag": b"consumer-2"}),  # a lab worker
        ("consumer.created", {"vhost": "/", "queue": "task_queue", "consumer_tag": "ctag1.f00"}),
        ("consumer.created", {"vhost": "/", "queue": "elsewhere", "consumer_tag": "ctag1.bar"}),
        ("queue.deleted", {"vhost": "/", "name": "task_queue"}),
    ]
    listener = records.EventListener.__new__(records.EventListener)
    listener.other_consumers, listener.task_queue_deleted = set(), False
    listener.hear(records.BrokerWatch(RecordsChannel([[one]], broker_events=events), "broker-events.b1", {}))
    assert listener.other_consumers == {"ctag1.f00"} and listener.task_queue_deleted


def test_a_broker_alarm_is_told_once_while_no_record_comes(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(records.time, "monotonic", lambda: clock[0])
    asked = []
    held = records.HeldBack(lambda: asked.append(clock[0]) or ["memory"])
    for _ in range(8):
        held.check()
        clock[0] += records.QUIET_SECONDS / 2
    held.reset()  # a record came through
    held.check()
    notices = [r.getMessage() for r in caplog.records if r.name == "records"]
    assert asked == [0.0, 12.0] and len(notices) == 2
    assert notices[0].startswith("[!] the broker has a memory alarm: it holds back the workers' records")


def test_an_attempt_begun_before_task_queue_was_deleted_is_not_waited_for():
    # Its delivery went with the queue and its worker's word on it may never come: send.sh
    # --wait waited for it until its timeout (2 minutes in the stack test).
    before, after = started(record(1, "w1", 100.0, 106.0)), started(record(2, "w2", 110.0, 116.0))
    listener = records.EventListener.__new__(records.EventListener)
    listener.task_queue_deleted = None
    assert len(listener.ongoing([before, after])) == 2
    listener.task_queue_deleted = 105.0
    assert listener.ongoing([before, after]) == {(after["message_id"], "w2", 110.0)}


def test_the_broker_events_are_bound_before_the_first_task_goes(monkeypatch):
    """A deletion of task_queue while the tasks were being sent went unheard (send.sh waited to
    its --timeout in a CI run): the watch's queue was the collecting connection's own."""
    bound = []

    class Channel(RecordsChannel):
        def queue_bind(self, queue, exchange, routing_key):
            bound.append((queue, exchange, routing_key))

    monkeypatch.setattr(records, "open_first", lambda _parameters: FakeConnection(Channel()))
    records.EventListener(None, BATCH)  # new_task.py makes it before it sends
    assert (f"broker-events.{BATCH}", "amq.rabbitmq.event", "queue.deleted") in bound
