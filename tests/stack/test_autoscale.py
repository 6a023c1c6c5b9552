"""scripts/autoscale.sh on the real stack: a burst grows the pool and a quiet queue
shrinks it back after the window, a scale-down while tasks run loses none (and says
which task it handed back), a broker restart is reported and the pool kept, Ctrl+C
(or SIGTERM) leaves no process. The test stack's SECONDS_PER_DOT is 0.5 (stacklab.py): a task of
two dots, "two seconds" in the lab as students run it, takes one second here."""

import os
import time

import pytest

from autoscaler import Autoscaler, autoscaling
from lab.figures import tally

WINDOW = 8  # --down-after of these tests, seconds


def pool(lab):
    return len(lab.worker_names())


@pytest.mark.timeout(180)
def test_done_when_a_burst_of_48_grows_the_pool_and_it_comes_back_to_1_within_the_window(lab):
    lab.up(1)
    options = ("--min", "1", "--max", "6", "--per-worker", "4", "--every", "1", "--down-after", str(WINDOW))
    with autoscaling(lab, *options) as autoscaler:
        autoscaler.wait_for_line("workers 1 -> 1")
        sent = lab.send("48", "--dots", "2", "--wait", "--name", "autoscale-burst", timeout=150)
        emptied = time.monotonic()
        assert sent.returncode == 0, sent.stdout + sent.stderr
        run, done = lab.saved_run("autoscale-burst")
        assert sorted(done) == list(range(1, 49))
        assert tally(run)["lost"] == 0
        # The evidence of the pool's growth is the workers' own records: at least 4 did tasks.
        assert len({record["worker"] for record in done.values()}) >= 4, autoscaler.lines
        assert autoscaler.said("up at once")
        lab.wait_for(lambda: pool(lab) == 1, "the pool back to 1", timeout=WINDOW + 15, interval=0.5)
        back = time.monotonic() - emptied
        assert autoscaler.said(" -> 1  down:"), autoscaler.lines
    assert back <= WINDOW + 15, back  # the window, a poll, and the idle workers' stop


@pytest.mark.timeout(150)
def test_a_scale_down_while_tasks_run_loses_none_and_says_what_it_handed_back(lab):
    # Three workers each in a 15-second task (longer than STOP_GRACE_SECONDS, 5): asked for
    # ceil(3 / 2) = 2 workers once the window (5 s) has passed, Compose stops the newest
    # worker mid-task and it hands its task back.
    lab.up(3)
    with lab.sending("3", "--dots", "30", "--wait", "--name", "autoscale-down") as sending:
        lab.wait_for(lambda: lab.queue() == (0, 3), "each worker holding a task", timeout=30)
        taken = lab.worker_names()
        options = ("--min", "2", "--max", "3", "--per-worker", "2", "--every", "1", "--down-after", "5")
        with autoscaling(lab, *options) as autoscaler:
            autoscaler.wait_for_line("workers 3 -> 2")
            autoscaler.wait_for_line("the scale-down handed", timeout=30)
            stdout, stderr = sending.communicate(timeout=90)
    assert sending.returncode == 0, stdout + stderr
    run, done = lab.saved_run("autoscale-down")
    assert sorted(done) == [1, 2, 3] and tally(run)["lost"] == 0
    handed = autoscaler.said("the scale-down handed")
    assert len(handed) == 1, autoscaler.lines  # --min 2: one scale-down, 3 -> 2
    stopped = max(taken, key=lambda name: int(name.rsplit("-", 1)[1]))  # Compose stops the newest
    assert f"({stopped}: stopped before it was done; another worker takes it)" in handed[0]
    cut = [e for e in run["events"] if e["event"] == "cut" and e["worker"] == stopped]
    assert len(cut) == 1 and any(r["redelivered"] for r in done.values())


@pytest.mark.timeout(150)
def test_a_broker_restart_is_reported_and_the_pool_kept(lab):
    lab.up(3)
    with autoscaling(lab, "--min", "1", "--max", "6", "--every", "0.5", "--down-after", "120") as autoscaler:
        autoscaler.wait_for_line("workers 3 -> 3")
        lab.compose("restart", "rabbitmq")
        autoscaler.wait_for_line("broker not answering", timeout=30)
        autoscaler.wait_for_line("broker answering again", timeout=90)
        assert pool(lab) == 3
    assert len(autoscaler.said("broker not answering")) == 1  # said once, not at every poll
    assert not [line for line in autoscaler.lines if "workers 3 -> " in line and "workers 3 -> 3" not in line]


@pytest.mark.parametrize("stop", ["Ctrl+C", "SIGTERM"])
def test_ctrl_c_or_sigterm_ends_it_leaving_the_pool_and_no_process(lab, stop):
    lab.up(3)
    autoscaler = Autoscaler(lab, ("--every", "0.5"))
    autoscaler.wait_for_line("workers 3 -> 3")
    if stop == "Ctrl+C":
        assert autoscaler.interrupt() == 0
    else:
        autoscaler.process.terminate()  # the script execs the autoscaler: this is its process
        assert autoscaler.process.wait(timeout=30) == 0
        autoscaler.reader.join(timeout=10)
    assert autoscaler.lines[-1].endswith("stopped; the pool stays as it is")
    # Nothing left of its process group: a `docker compose` it ran may take a moment to end on
    # the terminal's SIGINT (seen once: still there as the autoscaler exited).
    lab.wait_for(lambda: group_gone(autoscaler.process.pid), "nothing left of its process group", timeout=15)
    assert pool(lab) == 3


def group_gone(group):
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False
