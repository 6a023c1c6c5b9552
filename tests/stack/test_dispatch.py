"""How work is shared, checked on the real stack: the demos' claims and the records behind them."""

import os
import re
import subprocess

import pytest

from lab.figures import figures
from stacklab import CONSUMERS, ROOT, readline_within


def busy(record):
    return record["finished"] - record["started"]


def makespan(run):
    """The batch's makespan as the lab computes it (analysis.figures)."""
    return figures(run["events"])["makespan"]


def test_send_wait_reports_every_task_once_with_its_worker(lab):
    result = lab.send("12", "--random", "1-3", "--seed", "4", "--wait", "--name", "records")
    assert result.returncode == 0, result.stderr
    run, done = lab.saved_run("records")
    assert sorted(done) == list(range(1, 13))
    assert {record["worker"] for record in done.values()} == {f"consumer-{n}" for n in range(1, CONSUMERS + 1)}
    assert all(not record["redelivered"] and busy(record) > 0 for record in done.values())
    assert sum(event["event"] == "done" for event in run["events"]) == 12  # nothing done twice
    assert run["workers"] == CONSUMERS
    # The table, the makespan and the timeline, and the chart on disk.
    assert "worker       tasks  busy s  task names, in the order done" in result.stdout
    assert f"makespan {makespan(run):.1f} s for 12 tasks on {CONSUMERS} workers" in result.stdout
    assert len(re.findall(r"^consumer-1  \|", result.stdout, re.MULTILINE)) == 1  # its timeline row
    assert (lab.timelines / "records.png").read_bytes().startswith(b"\x89PNG")
    # Saved by the producer as the caller's user, or, for root, as the image's own (never root).
    owner = (lab.timelines / "records.json").stat().st_uid
    assert owner != 0 and owner == (os.getuid() or owner)
    # The session's tap (conftest.py) hears the workers' events, which it checks against the schema.
    lab.wait_for(lambda: lab.events.seen >= 12, "the event tap to hear the batch's events", timeout=10)


def test_tasks_with_no_work_are_each_recorded_and_their_log_lines_summed_up(lab):
    since = lab.now()
    result = lab.send("300", "--dots", "0", "--wait", "--name", "quick")
    assert result.returncode == 0, result.stderr
    run, done = lab.saved_run("quick")
    assert sorted(done) == list(range(1, 301))
    assert all(busy(record) == 0 for record in done.values())
    assert [event["event"] for event in run["events"]].count("started") == 0  # only tasks that take time

    def lines_and_sums():
        logs = lab.consumer_logs(since)
        summed = re.findall(r"\[x\] \.\.\. and ([\d,]+) more tasks with no work done", logs)
        return logs.count("[x] Done 'Task "), sum(int(n.replace(",", "")) for n in summed)

    lab.wait_for(lambda: sum(lines_and_sums()) == 300, "every task in the logs, on a line or in a sum")
    shown, _summed = lines_and_sums()
    seconds_touched = makespan(run) + 2  # a run of T seconds spans at most T + 2 log seconds
    assert shown <= CONSUMERS * 10 * seconds_touched  # ten lines a second a worker, at most


@pytest.mark.timeout(420)
def test_round_robin_demo_deals_tasks_out_in_turn(lab):
    result = lab.script("demo-round-robin.sh", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Round-robin: the broker dealt the 9 tasks out in turn" in result.stdout
    _run, done = lab.saved_run("round-robin")
    assert sorted(done) == list(range(1, 10))
    for worker in {record["worker"] for record in done.values()}:
        numbers = sorted(n for n, record in done.items() if record["worker"] == worker)
        first = numbers[0]
        assert numbers == [first, first + CONSUMERS, first + 2 * CONSUMERS], (worker, numbers)
    assert (lab.timelines / "round-robin.png").exists()
    # The workers stay so, the demo says how to bring prefetch 1 back, and doctor.sh tells it.
    assert result.stdout.rstrip().endswith("docker compose up -d --scale consumer=3 brings back prefetch 1.")
    doctor = lab.script("doctor.sh", timeout=60)
    assert "attached to task_queue, prefetch unlimited (round-robin)" in doctor.stdout, doctor.stdout


@pytest.mark.timeout(420)
def test_fair_dispatch_demo_beats_round_robin_on_a_skewed_workload(lab):
    result = lab.script("demo-fair-dispatch.sh", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    round_robin_run, round_robin = lab.saved_run("round-robin-skewed")
    fair_run, fair = lab.saved_run("fair-skewed")
    assert sorted(round_robin) == sorted(fair) == list(range(1, 10))
    # Round-robin gives every heavy task (3, 6, 9) to one worker.
    assert len({round_robin[n]["worker"] for n in (3, 6, 9)}) == 1
    assert len({fair[n]["worker"] for n in (3, 6, 9)}) > 1
    bound = figures(fair_run["events"])["lower_bound"]
    assert makespan(fair_run) < 0.75 * makespan(round_robin_run)  # 10 against 18 units in theory
    assert makespan(fair_run) < 1.5 * bound  # 1.25 in theory
    assert "Verdict: fair-skewed finished the same work" in result.stdout
    assert (lab.timelines / "fair-dispatch.png").exists()


def test_send_warns_when_fewer_workers_are_attached_and_waits_for_them(lab):
    expected = CONSUMERS + 1
    sending = subprocess.Popen(
        ["docker", "compose", "run", "--rm", "--no-deps", "-T", "producer",
         "new_task.py", "--expect-workers", str(expected), "2"],
        cwd=ROOT, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        warning = readline_within(sending.stderr, 120)  # once the producer has counted the workers
        assert f"{CONSUMERS} of {expected} workers attached to task_queue" in warning
        lab.compose("up", "--detach", "--scale", f"consumer={expected}", "consumer")
        out, err = sending.communicate(timeout=60)
    finally:
        sending.kill()
        sending.communicate()
    assert sending.returncode == 0, err
    assert f"{expected} of {expected} workers attached; sending now" in err
    assert "Sent 2 tasks" in out
    lab.up()  # back to the usual number of workers
