"""The autoscaler's decision rule (labctl/scaling.py), case by case: KEDA's QueueLength
recommendation with its activation, and HPA's scale-down window."""

import pytest

from labctl.scaling import Rule, Scaler, recommend

LAB = Rule(minimum=1, maximum=6, per_worker=4, down_after=30)
TO_ZERO = Rule(minimum=0, maximum=6, per_worker=4, down_after=30, activation=0)
ACTIVATION_2 = Rule(minimum=0, maximum=6, per_worker=4, down_after=30, activation=2)


@pytest.mark.parametrize(
    ("rule", "messages", "workers"),
    [
        (LAB, 0, 1),  # the minimum, however quiet
        (LAB, 1, 1),
        (LAB, 4, 1),  # exactly one worker's share
        (LAB, 5, 2),  # ceil: one message over is one worker more
        (LAB, 16, 4),
        (LAB, 48, 6),  # 12 asked for, at most --max
        (TO_ZERO, 0, 0),  # with --min 0, nothing to do is no worker
        (TO_ZERO, 1, 1),  # one message above activation 0 wakes one
        (ACTIVATION_2, 2, 0),  # not above the activation: stays asleep
        (ACTIVATION_2, 3, 1),
        (ACTIVATION_2, 9, 3),  # above it, the share decides
        (Rule(minimum=3, maximum=6), 1, 3),  # at least --min
    ],
)
def test_recommendation(rule, messages, workers):
    assert recommend(messages, rule)[0] == workers


def decisions(rule, readings, workers=1):
    """Feed (seconds, ready, unacked) readings to one Scaler, the pool following each decision:
    the pool after each."""
    scaler, pools = Scaler(rule), []
    for now, ready, unacked in readings:
        workers = scaler.decide(now, ready, unacked, workers).workers
        pools.append(workers)
    return pools


@pytest.mark.parametrize(
    ("name", "rule", "readings", "pools"),
    [
        # A burst of 48: up at once to --max, on the first reading.
        ("burst", LAB, [(0, 0, 0), (1, 48, 0)], [1, 6]),
        # The burst read at 0 s, the queue empty from 10 s: held at 6 while the window (30 s)
        # remembers the burst, then 1.
        ("quiet", LAB, [(0, 48, 0), (10, 0, 0), (30, 0, 0), (31, 0, 0)], [6, 6, 6, 1]),
        # Falling load: down to the highest recommendation of the window, not to today's.
        ("falls", LAB, [(0, 24, 0), (20, 8, 0), (31, 0, 0), (51, 0, 0)], [6, 6, 2, 1]),
        # The busy workers' tasks count: 6 unacked, none ready keeps 2 workers (not 1).
        ("busy", LAB, [(0, 0, 6), (40, 0, 6), (80, 0, 6)], [2, 2, 2]),
        # Scale to zero with a task in flight: the unacked task keeps its worker; only after
        # the window with nothing at all does the pool go to 0.
        (
            "to zero",
            TO_ZERO,
            [(0, 1, 0), (5, 0, 1), (40, 0, 1), (45, 0, 0), (70, 0, 0), (76, 0, 0)],
            [1, 1, 1, 1, 1, 0],
        ),
        # From 0: the first message wakes one worker at once.
        ("wake", TO_ZERO, [(0, 0, 0), (31, 0, 0), (32, 1, 0)], [1, 0, 1]),
        # Activation 2: two messages leave the pool asleep, a third wakes it.
        ("activation", ACTIVATION_2, [(0, 0, 0), (31, 2, 0), (32, 3, 0)], [1, 0, 1]),
        # No window: down as soon as the queue asks for less.
        ("no window", Rule(down_after=0), [(0, 48, 0), (1, 0, 0)], [6, 1]),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_the_pool_over_time(name, rule, readings, pools):
    assert decisions(rule, readings, workers=1) == pools, name


def test_a_restarted_autoscaler_keeps_the_pool_it_finds_for_the_window():
    scaler = Scaler(LAB)
    assert scaler.decide(0, 0, 0, 5).workers == 5
    assert scaler.decide(29, 0, 0, 5).workers == 5
    assert scaler.decide(31, 0, 0, 5).workers == 1


def test_a_pool_beyond_max_comes_down_to_it():
    assert Scaler(LAB).decide(0, 100, 0, 9).workers == 6


def test_counting_only_ready_messages_would_remove_busy_workers():
    """The pitfall the rule avoids: six workers each in a task, nothing waiting. Fed the
    unacknowledged count the pool stays; fed the ready count alone it is cut to 1."""
    rule = Rule(minimum=1, maximum=6, per_worker=1, down_after=5)
    counted, ready_only = Scaler(rule), Scaler(rule)
    for now in (0, 3, 6):
        kept = counted.decide(now, 0, 6, 6).workers
        cut = ready_only.decide(now, 0, 0, 6).workers
    assert (kept, cut) == (6, 1)


@pytest.mark.parametrize(
    ("ready", "unacked", "workers", "starts"),
    [
        (48, 0, 1, "up at once: ceil(48 / 4) = 12, at most --max 6"),
        (4, 0, 1, "steady: ceil(4 / 4) = 1"),
    ],
)
def test_each_decision_says_why(ready, unacked, workers, starts):
    assert Scaler(LAB).decide(0, ready, unacked, workers).why == starts


def test_a_held_and_a_done_scale_down_say_why():
    scaler = Scaler(LAB)
    scaler.decide(0, 24, 0, 1)
    held = scaler.decide(10, 0, 0, 6)
    assert (held.workers, held.why) == (6, "down held: ceil(0 / 4) = 0, at least 1; the last 30 s asked for up to 6")
    down = scaler.decide(31, 0, 0, 6)
    assert (down.workers, down.why) == (1, "down: ceil(0 / 4) = 0, at least 1; the highest of the last 30 s is 1")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (Rule(minimum=-1), "--min must be 0 or more, got -1"),
        (Rule(minimum=4, maximum=3), "--max must be at least 1 and at least --min (4), got 3"),
        (Rule(minimum=0, maximum=0), "--max must be at least 1 and at least --min (0), got 0"),
        (Rule(per_worker=0), "--per-worker must be 1 or more, got 0"),
        (Rule(down_after=-1), "--down-after must be 0 or more seconds, got -1"),
        (Rule(), None),
    ],
)
def test_rules_that_cannot_work_are_refused(rule, problem):
    assert rule.problem() == problem
