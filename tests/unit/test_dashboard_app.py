"""The dashboard's Python without a broker (issue 16): app.create_app on Starlette's
TestClient, the hub's history, and the broker events that say a worker is gone."""

import asyncio
import base64
import json
import os
import time

import pytest
from starlette.testclient import TestClient

import app as dashboard_app
import batches as batches_module
import hub as hub_module
from app import create_app
from hub import Hub
from lab.figures import figures as figures_of
from lab.schema import consumer_event

LOGIN = {"RABBITMQ_DEFAULT_USER": "student", "RABBITMQ_DEFAULT_PASS": "s3cret-of-mine"}


class Idle:
    """A follower that feeds nothing: the tests feed the hub themselves."""

    def __init__(self, config, hub):
        pass

    async def run(self):
        return None


def client(tmp_path, **settings):
    env = {**LOGIN, "TIMELINES": str(tmp_path), **settings}
    return TestClient(create_app(env, follower=Idle))


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_on_loopback_the_page_needs_no_login(tmp_path):
    with client(tmp_path, LAB_BIND_ADDRESS="127.0.0.1") as page:
        assert page.get("/").status_code == 200
        assert page.get("/api/runs").status_code == 200


def test_beyond_loopback_every_path_but_the_health_check_asks_for_the_lab_login(tmp_path):
    with client(tmp_path, LAB_BIND_ADDRESS="0.0.0.0") as page:
        for path in ("/", "/index.html", "/api/runs", "/events"):
            refused = page.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
        assert page.get("/", headers=basic("student", "wrong")).status_code == 401
        assert page.get("/", headers=basic("guest", "guest")).status_code == 401
        assert page.get("/", headers=basic("student", "s3cret-of-mine")).status_code == 200
        assert page.get("/healthz").json() == {"serving": True, "broker": False}


def test_no_config_is_built_at_import():
    assert not {"CONFIG", "HUB", "app"} & set(vars(dashboard_app))


def test_saved_runs_are_listed_newest_first_and_served_by_name_only(tmp_path):
    runs = tmp_path / "timelines"
    runs.mkdir()
    for age, name in enumerate(["newest", "older", "oldest"]):
        path = runs / f"{name}.json"
        path.write_text(json.dumps({"name": name, "batch": name, "events": []}))
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "secret.json").write_text('{"secret": true}')
    (runs / "notes.txt").write_text("not a run")
    with client(runs) as page:
        assert page.get("/api/runs").json() == ["newest", "older", "oldest"]
        older = page.get("/api/runs/older").json()
        assert (older["name"], older["events"], older["segments"], older["steps"]) == ("older", [], [], [])
        for name in ("secret", "..%2Fsecret", "notes", "notes.txt", "no such run", "%00", "older%20"):
            answer = page.get(f"/api/runs/{name}")
            assert answer.status_code == 404, name
            assert "secret" not in answer.text or name.endswith("secret")


def stream(text):
    """[(id, message)] from Server-Sent Events text."""
    messages = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        messages.append((int(fields["id"]), json.loads(fields["data"])))
    return messages


def event(n):
    return {"event": "quick", "worker": "consumer-1", "batch": "b", "count": n, "at": 100.0 + n}


def test_the_faults_a_demo_noted_for_a_named_batch_come_with_its_figures(tmp_path):
    now = time.time()
    earlier, killed = {"at": now - 3600, "label": "from an earlier run"}, {"at": now + 1, "label": "killed rabbitmq"}
    marks = [earlier, "not json", killed]
    (tmp_path / "node-failure.marks").write_text("\n".join(json.dumps(m) if isinstance(m, dict) else m for m in marks))
    hub = Hub(timelines=tmp_path)
    hub.add_events([{"event": "sending", "batch": "b", "name": "node-failure", "tasks": 1, "at": now}])
    hub.add_events([started("consumer-1", "b", 1, now)])
    (view,) = hub.batches.views(now + 2)
    assert view["faults"] == [{"at": now + 1, "label": "killed rabbitmq"}] and view["name"] == "node-failure"


def test_the_queues_figures_carry_the_moment_they_are_sent_for_the_page_clock():
    # Gathering them can take seconds (a cluster electing a leader): a moment taken before
    # then set the page's clock behind, and it drew done tasks as running.
    hub = Hub(clock=lambda: 250.0)
    hub.set_queues({"task_queue": {"ready": 0, "unacked": 0, "consumers": 3}})
    ((_, queues),) = [message for message in stream(hub.catch_up(None)) if message[1]["type"] == "queues"]
    assert queues["now"] == 250.0


def test_a_browser_that_reconnects_gets_what_it_missed_and_a_new_one_a_snapshot():
    hub = Hub()
    for n in (1, 2, 3):
        hub.add_events([event(n)])
    hub.set_queues({"now": 1.0, "task_queue": {"ready": 0, "unacked": 0, "consumers": 3}})

    (_, status), (number, snapshot), (_, batch), (_, current), (_, queues) = stream(hub.catch_up(None))
    assert current == {"type": "current", "batch": "b"}
    assert batch["type"] == "batch" and batch["figures"]["tasks"] == 6  # quick counts 1 + 2 + 3
    assert snapshot == {"type": "snapshot", "events": [event(1), event(2), event(3)]}
    assert number == hub.latest == 4
    assert status["type"] == "status" and queues["task_queue"]["consumers"] == 3

    _status, (_, missed), *_ = stream(hub.catch_up(1))
    assert missed == {"type": "events", "events": [event(2), event(3)]}
    _status, (_, nothing), *_ = stream(hub.catch_up(4))  # its last id was a queues message: nothing missed
    assert nothing == {"type": "events", "events": []}
    _status, (_, restarted), *_ = stream(hub.catch_up(99))  # an id from before the dashboard restarted
    assert restarted["type"] == "snapshot" and len(restarted["events"]) == 3


def test_a_snapshot_names_the_workers_the_broker_says_are_attached_after_the_history_let_them_go():
    # A dashboard restarted after a forged flood reads the flood back from the stream: it fills
    # the history, and without the broker's word the page had no real worker to rank first.
    hub = Hub(history_messages=3)
    said = {"worker": "consumer-1", "at": 50.0, "broker": True}
    hub.add_events([{"event": "attached", **said}])
    hub.add_events([{"event": "attached", **said, "worker": "consumer-2"}])
    hub.add_events([{"event": "gone", **said, "worker": "consumer-2", "at": 51.0}])
    for n in range(1, 4):
        hub.add_events([{"event": "attached", "worker": f"forged-{n}", "prefetch": 1, "at": 60.0}])
    _status, (_, message), *_ = stream(hub.catch_up(None))
    assert [event["worker"] for event in message["events"]] == ["consumer-1", "forged-1", "forged-2", "forged-3"]
    assert message["events"][0] == {"event": "attached", **said}
    # Still in the history: not twice.
    hub = Hub()
    hub.add_events([{"event": "attached", **said}])
    _status, (_, message), *_ = stream(hub.catch_up(None))
    assert message["events"] == [{"event": "attached", **said}]


def test_a_leaving_said_for_a_worker_the_broker_saw_is_left_to_the_brokers_own_word():
    # Anyone with the login can publish "consumer-2 is leaving": the page greyed out a worker the
    # broker still counted. Its own "gone" (consumer.deleted) follows any real leaving.
    hub = Hub()
    hub.add_events([{"event": "attached", "worker": "consumer-2", "at": 50.0, "broker": True}])
    hub.add_events([{"event": "leaving", "worker": "consumer-2", "at": 51.0}])
    hub.add_events([{"event": "leaving", "worker": "unseen-1", "at": 51.0}])
    hub.add_events([{"event": "gone", "worker": "consumer-2", "at": 51.1, "broker": True}])
    kept = [(e["event"], e["worker"]) for _n, text in hub.history for e in json.loads(f"[{text}]")]
    assert kept == [("attached", "consumer-2"), ("leaving", "unseen-1"), ("gone", "consumer-2")]
    assert hub.status["flooded"] == 0  # not a flood: nothing the page is told it missed


def test_a_browser_that_missed_more_than_the_history_holds_gets_a_snapshot():
    hub = Hub(history_messages=2)
    for n in (1, 2, 3, 4):
        hub.add_events([event(n)])
    _status, (_, message), *_ = stream(hub.catch_up(1))
    assert message == {"type": "snapshot", "events": [event(3), event(4)]}
    _status, (_, message), *_ = stream(hub.catch_up(2))
    assert message == {"type": "events", "events": [event(3), event(4)]}


def test_the_history_is_capped_by_bytes_too():
    hub = Hub(history_bytes=10_000)
    for n in range(1, 1001):
        hub.add_events([event(n)])
    assert hub.history_bytes <= 10_000
    _status, (_, message), *_ = stream(hub.catch_up(None))
    assert message["events"][-1] == event(1000) and len(message["events"]) < 200


def test_losing_the_broker_and_finding_another_node_is_no_gap_only_what_the_stream_lost_is():
    """The dashboard reads the stream on from where it stopped (feeds.py): the time without a
    node loses nothing. What the stream no longer held (feeds.py asks) is a gap."""
    times = iter([10.0, 12.5, 13.0])
    hub = Hub(clock=lambda: next(times))
    hub.set_broker("rabbitmq")
    hub.set_broker(None)
    assert hub.status["broker"] is None and hub.lost_at == 10.0
    hub.set_broker("rabbitmq-2")
    assert hub.status == {"broker": "rabbitmq-2", "gaps": [], "dropped": 0, "out_of_time": 0, "flooded": 0}
    assert hub.lost_at is None and hub.batches.gaps == []
    hub.mark_gap(10.0, 12.5)
    assert hub.status["gaps"] == [{"from": 10.0, "to": 12.5}] and hub.batches.gaps == [(10.0, 12.5)]


def consumer(routing_key, **headers):
    defaults = {"consumer_tag": "consumer-2", "queue": "task_queue", "vhost": "/", "timestamp_in_ms": 1_700_000_000_500}
    return consumer_event(routing_key, {**defaults, **headers}, now=5.0)


def test_the_brokers_consumer_events_say_which_worker_attached_and_which_is_gone():
    said = {"worker": "consumer-2", "at": 1_700_000_000.5, "broker": True}
    assert consumer("consumer.created") == {"event": "attached", **said}
    assert consumer("consumer.deleted") == {"event": "gone", **said}
    assert consumer("consumer.deleted", consumer_tag=b"consumer-3", queue=b"task_queue")["worker"] == "consumer-3"
    assert consumer("consumer.deleted", timestamp_in_ms=None)["at"] == 5.0


@pytest.mark.parametrize(
    "routing_key, headers",
    [
        ("consumer.deleted", {"queue": "task-records.b1"}),  # send.sh --wait's own consumer
        ("consumer.deleted", {"vhost": "other"}),
        ("consumer.deleted", {"consumer_tag": ""}),
        ("consumer.deleted", {"consumer_tag": 7}),
        ("queue.deleted", {}),
    ],
)
def test_other_consumers_and_other_broker_events_say_nothing(routing_key, headers):
    assert consumer(routing_key, **headers) is None


def test_the_queues_figures_are_dropped_when_the_last_page_leaves():
    # Not kept fresh while no page watches (feeds.Follower.keep_figures): the next page
    # must not be shown figures from then.
    async def open_and_leave():
        hub = Hub()
        stream_ = hub.watch(None)
        await anext(stream_)
        assert hub.watched()
        hub.set_queues({"task_queue": {"ready": 0, "unacked": 0, "consumers": 3}})
        await stream_.aclose()
        return hub

    hub = asyncio.run(open_and_leave())
    assert not hub.watched() and hub.latest_queues is None
    assert [message["type"] for _, message in stream(hub.catch_up(None))] == ["status", "snapshot", "current"]


def started(worker, batch, n, at):
    return {"event": "started", "worker": worker, "batch": batch, "message_id": f"{batch}.{n}", "task": "T",
            "redelivered": False, "started": at, "at": at}  # fmt: skip


def test_a_flood_of_events_from_workers_the_broker_never_saw_is_cut_and_counted_and_real_ones_pass():
    hub = Hub(clock=lambda: 1000.0)
    hub.add_events([{"event": "attached", "worker": "consumer-1", "at": 999.0, "broker": True}])
    hub.add_events([started("consumer-1", "earlier", 1, 999.0)])
    flood = [started(f"forged-{n}", f"forged-{n}", 1, 1000.0) for n in range(hub_module.UNSEEN_EVENTS_PER_SECOND + 50)]
    hub.add_events(flood)
    hub.add_events([started("consumer-1", "real", 1, 1000.0)])
    assert hub.status["flooded"] == 50
    assert {"earlier", "real"} <= set(hub.batches.batches) and len(hub.batches.batches) <= batches_module.BATCHES_KEPT
    assert hub.batches.current() == "real"  # forged batches, however many and however new, are not the current one


def test_just_started_the_dashboard_knows_the_real_batch_of_the_streams_last_hour_by_its_saved_run(tmp_path):
    """The broker's word on workers is heard live only: read back from the stream, every worker
    is unseen, and a forged batch that never ends was the current one."""
    hub = Hub(clock=lambda: 1000.0, timelines=tmp_path)
    sending = {"event": "sending", "batch": "real", "name": "real-run", "tasks": 1, "at": 990.0}
    done = {**started("consumer-1", "real", 1, 990.0), "event": "done", "finished": 991.0}
    hub.add_events([sending, started("consumer-1", "real", 1, 990.0), done])
    hub.add_events([started("forged-1", "forged", 1, 995.0)])  # never ends
    assert hub.batches.current() == "forged"
    (tmp_path / "real-run.json").write_text(json.dumps({"name": "real-run", "batch": "real", "events": [done]}))
    hub.batches.all_views(1000.0)  # as a page opening gets them: the saved run found
    assert hub.batches.current() == "real"


def test_a_batch_sent_and_not_yet_started_does_not_hide_the_one_running():
    hub = Hub(clock=lambda: 1000.0)
    hub.add_events([started("consumer-1", "older", 1, 999.0)])
    hub.add_events([{"event": "sending", "batch": "newer", "name": None, "tasks": 6, "at": 999.5}])
    assert hub.batches.current() == "older"
    hub.add_events([started("consumer-2", "newer", 1, 999.8)])
    assert hub.batches.current() == "newer"


def test_with_every_batch_kept_real_a_new_one_still_comes_in_and_the_oldest_goes():
    hub = Hub(clock=lambda: 1000.0)
    hub.add_events([{"event": "attached", "worker": "consumer-1", "at": 999.0, "broker": True}])
    for n in range(batches_module.BATCHES_KEPT + 1):
        hub.add_events([started("consumer-1", f"b{n}", 1, 999.0)])
    assert list(hub.batches.batches) == [f"b{n}" for n in range(1, batches_module.BATCHES_KEPT + 1)]


def test_messages_beyond_the_bytes_a_second_are_dropped_unread_and_counted():
    hub = Hub(clock=lambda: 1000.0)
    assert hub.room_for(hub_module.BYTES_PER_SECOND - 10)
    assert not hub.room_for(100)
    assert hub.room_for(10)
    assert hub.status["flooded"] == 1


def test_a_batch_whose_name_was_lost_shows_its_saved_runs_figures_once_saved(tmp_path):
    now = time.time()
    hub = Hub(timelines=tmp_path)
    events = [started("consumer-1", "lost-name", n, now) for n in (1, 2)]
    hub.add_events(events)  # its "sending" event and the "done" ones were lost in a flood
    (live,) = hub.batches.views(now + 1)
    assert live["from_records"] is False and live["figures"]["running"] == 2
    done = [{**event, "event": "done", "finished": now + 1} for event in events]
    for event in done:
        del event["at"]
    (tmp_path / "flooded.json").write_text(json.dumps({"name": "flooded", "batch": "lost-name", "events": done}))
    (saved,) = hub.batches.views(now + 2)
    assert saved["from_records"] is True and saved["figures"] == figures_of(done)
    assert list(hub.batches.views(now + 3)) == []  # told once


def test_a_batch_that_overlaps_a_time_the_dashboard_heard_nothing_says_its_figures_may_miss_events():
    now = [990.0]
    hub = Hub(clock=lambda: now[0])
    hub.add_events([started("consumer-1", "before", 1, 990.0)])
    hub.set_broker("rabbitmq")
    (view,) = hub.batches.views(1000.0)
    assert view["missed"] is False
    now[0] = 1000.0
    hub.set_broker(None)  # lost at 1000
    (view,) = hub.batches.views(1001.0)
    assert view["missed"] is True  # nothing heard since: uncertain
    now[0] = 1003.0
    hub.set_broker("rabbitmq-2")  # found at 1003, the stream read on from where it stopped
    (view,) = hub.batches.views(1004.0)
    assert view["missed"] is False
    hub.mark_gap(1000.0, 1003.0)  # but the stream no longer held some of it
    hub.add_events([started("consumer-1", "after", 1, 1010.0)])
    missed = {view["batch"]: view["missed"] for view in hub.batches.all_views(1011.0)}
    assert missed == {"before": True, "after": False}


def test_a_seconds_figures_read_a_bounded_number_of_events_the_current_batch_first():
    live = batches_module.Batches(seen_by_broker={"consumer-1"})
    per_batch = batches_module.EVENTS_PER_BATCH
    for n in range(8):  # forged batches, full, every attempt still running
        live.add([started(f"forged-{n}", f"forged-{n}", k, 1000.0 + k / per_batch) for k in range(per_batch)])
    live.add([started("consumer-1", "real", 1, 1000.0)])
    views = list(live.views(1001.0))
    assert views[0]["batch"] == "real"
    read = sum(len(live.batches[view["batch"]].events) for view in views)
    assert read <= batches_module.EVENTS_READ_PER_CALL + per_batch and len(views) < 9


def test_a_batch_named_with_a_path_is_read_from_no_file(tmp_path):
    (tmp_path / "secret.json").write_text(json.dumps({"batch": "b", "events": [], "name": "secret"}))
    runs = tmp_path / "timelines"
    runs.mkdir()
    hub = Hub(timelines=runs)
    hub.add_events([{"event": "sending", "batch": "b", "name": "../secret", "tasks": 1, "at": time.time()}])
    (view,) = hub.batches.views(time.time())
    assert view["name"] is None and view["from_records"] is False
