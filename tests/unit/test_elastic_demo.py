"""The elastic demo's figures beside lab/figures.py's (labctl/elastic_demo.py): when the first
added worker started a task, and the pool's size over time, from the workers' events."""

from labctl.elastic_demo import first_added, pool_over_time


def lifetime(kind, worker, at):
    return {"event": kind, "worker": worker, "at": at}


def started(worker, at):
    return {"event": "started", "worker": worker, "started": at}


def test_the_first_added_worker_is_the_first_not_in_the_pool_at_the_start():
    events = [started("consumer-1", 100), started("consumer-2", 103.5), started("consumer-3", 102.5)]
    assert first_added(events, {"consumer-1", "consumer-2"}, 100) == 2.5
    assert first_added(events, {"consumer-1", "consumer-2", "consumer-3"}, 100) is None


def test_the_pool_over_time_follows_attached_and_leaving():
    lifetimes = [
        lifetime("attached", "consumer-2", 102),
        lifetime("attached", "consumer-3", 103),
        lifetime("leaving", "consumer-3", 110),
        lifetime("attached", "consumer-4", 130),  # after the end: not drawn
    ]
    assert pool_over_time(lifetimes, {"consumer-1"}, 100, 120) == [(0.0, 1), (2, 2), (3, 3), (10, 2), (20, 2)]
