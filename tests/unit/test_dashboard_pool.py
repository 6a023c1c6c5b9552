"""The chart of task_queue's depth and the pool over time (issue 35): the hub keeps a bounded
history of the readings it takes and of the `scaled` events that pass the door, and sends it
with the queues' figures; forged `scaled` events are refused at the door and bounded a second."""

import json

import pytest

import door
import hub as hub_module
import pool_history
from hub import Hub

T = 1_700_000_000.0


class Clock:
    def __init__(self, now=T):
        self.now = now

    def __call__(self):
        return self.now


def scaled(at, before, workers, why="up at once: ceil(15 / 4) = 4"):
    return {"event": "scaled", "at": at, "ready": 15, "unacked": 0, "recommended": workers, "before": before,
            "workers": workers, "why": why}  # fmt: skip


def queues(ready, unacked, consumers):
    return {"unacked_from": "prometheus", "task_queue": {"ready": ready, "unacked": unacked, "consumers": consumers},
            "dead_letter_queue": {"ready": 0, "unacked": 0, "consumers": 0}}  # fmt: skip


def over_time(hub):
    return json.loads(hub.latest_queues)["over_time"]


def test_each_reading_of_task_queue_goes_out_with_the_readings_before_it():
    clock = Clock()
    hub = Hub(clock=clock)
    for second, (ready, unacked, consumers) in enumerate([(0, 0, 1), (15, 0, 1), (11, 4, 4)]):
        clock.now = T + second
        hub.set_queues(queues(ready, unacked, consumers))
    sent = over_time(hub)
    assert sent["window"] == pool_history.WINDOW_SECONDS
    assert sent["readings"] == [[T, 0, 0, 1], [T + 1, 15, 0, 1], [T + 2, 11, 4, 4]]
    assert sent["scalings"] == []


def test_the_readings_kept_are_bounded_whatever_comes_and_only_the_windows_are_sent():
    clock = Clock()
    hub = Hub(clock=clock)
    for second in range(3 * pool_history.READINGS_KEPT):
        clock.now = T + second * 0.5
        hub.set_queues(queues(second, 0, 1))
    assert len(hub.pool.readings) == pool_history.READINGS_KEPT
    sent = over_time(hub)["readings"]
    assert sent[-1] == [clock.now, 3 * pool_history.READINGS_KEPT - 1, 0, 1]
    assert len(sent) == pool_history.READINGS_KEPT
    clock.now += pool_history.WINDOW_SECONDS - 10  # most of them older than the window now
    hub.set_queues(queues(0, 0, 1))
    assert all(reading[0] >= clock.now - pool_history.WINDOW_SECONDS for reading in over_time(hub)["readings"])


def test_a_time_without_readings_breaks_the_lines_and_an_unknown_figure_is_null():
    clock = Clock()
    hub = Hub(clock=clock)
    hub.set_queues(queues(3, None, 2))  # the Prometheus endpoint has no figure yet
    clock.now = T + 1
    hub.set_queues({"unacked_from": "prometheus", "task_queue": None, "dead_letter_queue": None})  # not declared
    clock.now = T + 60  # no page watched meanwhile
    hub.set_queues(queues(0, 0, 2))
    assert over_time(hub)["readings"] == [
        [T, 3, None, 2], [T + 1, None, None, None], [T + 60, None, None, None], [T + 60, 0, 0, 2]
    ]  # fmt: skip


def test_each_scaling_that_changed_the_pool_is_kept_with_its_why_and_one_that_kept_it_is_not():
    clock = Clock()
    hub = Hub(clock=clock)
    hub.add_events([scaled(T - 2, 1, 1, "steady: ceil(0 / 4) = 0, at least 1")])
    hub.add_events([scaled(T - 1, 1, 4)])
    hub.add_events([scaled(T, 4, 3, "down: the highest of the last 10 s is 3 <b>")])
    hub.set_queues(queues(0, 0, 3))
    assert over_time(hub)["scalings"] == [
        {"at": T - 1, "before": 1, "workers": 4, "why": "up at once: ceil(15 / 4) = 4"},
        {"at": T, "before": 4, "workers": 3, "why": "down: the highest of the last 10 s is 3 <b>"},  # text, as it came
    ]


def test_scalings_kept_are_bounded_sorted_by_time_and_none_from_before_the_window():
    clock = Clock()
    hub = Hub(clock=clock)
    hub.add_events([scaled(T - pool_history.WINDOW_SECONDS - 1, 1, 2)])  # a day old passes the door, not here
    for n in range(pool_history.SCALINGS_KEPT + 20):
        hub.add_events([scaled(T - n * 0.1, 1, 2 + n % 5)])  # newest first
    hub.set_queues(queues(0, 0, 1))
    sent = over_time(hub)["scalings"]
    assert len(hub.pool.scalings) == len(sent) == pool_history.SCALINGS_KEPT
    assert [s["at"] for s in sent] == sorted(s["at"] for s in sent)
    assert min(s["at"] for s in sent) >= T - pool_history.WINDOW_SECONDS


def test_a_flood_of_forged_scalings_is_cut_like_any_events_from_no_worker_the_broker_saw():
    hub = Hub(clock=Clock())
    hub.add_events([scaled(T, 1, 2 + n % 5) for n in range(hub_module.UNSEEN_EVENTS_PER_SECOND + 30)])
    assert hub.status["flooded"] == 30
    assert len(hub.pool.scalings) == pool_history.SCALINGS_KEPT


def test_a_valid_scaled_event_passes_the_door():
    body = json.dumps([scaled(T, 1, 4), scaled(T, 4, 4, "steady")]).encode()
    assert door.read_message(body, T) == ([scaled(T, 1, 4), scaled(T, 4, 4, "steady")], 0, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"workers": -1},
        {"workers": 2.5},
        {"workers": True},
        {"before": "4"},
        {"before": None},
        {"ready": -3},
        {"unacked": "many"},
        {"recommended": [4]},
        {"why": 42},
        {"why": "x" * 1021},
        {"worker": "consumer-1"},  # the autoscaler is no worker
        {"html": "<script>alert(1)</script>"},
        {"at": "now"},
    ],
    ids=repr,
)
def test_a_forged_scaled_event_is_refused_at_the_door_and_counted(change):
    body = json.dumps([scaled(T, 1, 4), {**scaled(T, 1, 4), **change}]).encode()
    assert door.read_message(body, T) == ([scaled(T, 1, 4)], 1, 0)


@pytest.mark.parametrize("missing", ["ready", "unacked", "recommended", "before", "workers", "why", "at"])
def test_a_scaled_event_without_a_field_is_refused(missing):
    event = scaled(T, 1, 4)
    del event[missing]
    assert door.read_message(json.dumps([event]).encode(), T) == ([], 1, 0)


def test_a_scaled_event_far_from_now_is_dropped_apart():
    assert door.read_message(json.dumps([scaled(T + 3600, 1, 4)]).encode(), T) == ([], 0, 1)
