"""check-worker.sh's orchestrator (checker/) without a broker: how it reads a copy's output,
ends a copy and what it started, diagnoses a copy that ended, and the verdicts each check
gives, against a broker and workers simulated in real time (simulated_lab.py): the
tutorial's worker in the wording of each language passes; each common mistake fails the
check it should, with its fix."""

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from simulated_lab import SimulatedLab, Worker

from checker import checks, diagnose
from checker import session as session_module
from checker.__main__ import clean_up, run_checks, summary
from checker.broker import Broker
from checker.checks import Verdict, held_behind
from checker.copies import RUN_MARK, Copies, Copy, naming, printable
from checker.session import Sample, Session
from checker.timeline import records

PY = sys.executable


def test_a_task_is_recognised_in_any_wording_but_not_inside_a_longer_task():
    for line in (" [x] Received Task 1.", "Received a message: Task 1.", " [x] Received b'Task 1.'",
                 ' [x] Received Ok("Task 1.")', "got Task 1."):  # fmt: skip
        assert naming("Task 1.").search(line), line
    for line in (" [x] Received Task 1..", " [x] Received Task 10", " [x] Received Task 1.0"):
        assert not naming("Task 1.").search(line), line
    assert naming("Task 2").search("Received Task 2") and not naming("Task 2").search("Received Task 20")


def test_a_copys_output_is_kept_as_plain_text():
    assert printable("\x1b[31mred\x1b[0m and \x07bell") == "red and ?bell"
    assert len(printable("x" * 10_000)) == 2000


def finished(copy, seconds=10):
    copy.process.wait(seconds)
    copy.reader.join(seconds)
    return copy


def test_lines_naming_a_task_and_saying_done_make_attempts_with_their_moments(tmp_path):
    script = "print('Received a message: Task 1.'); print('Done'); print(' [x] Received b\\'Task 2..\\'')"
    copy = finished(Copy("copy-1", [PY, "-c", script], tmp_path, None))
    first, second = copy.attempts(["Task 1.", "Task 2.."])
    assert (first["task"], second["task"]) == ("Task 1.", "Task 2..")
    assert first["started"] <= first["finished"] and second["finished"] is None
    assert copy.named("Task 2..") and not copy.named("Task 3")


def test_ending_a_copy_ends_what_it_started_even_what_ignores_sigterm(tmp_path):
    script = "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    script += f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']); print(child.pid, flush=True); "
    script += "time.sleep(60)"
    copy = Copy("copy-1", [PY, "-c", script], tmp_path, None)
    child = int(first_line(copy))
    started = time.monotonic()
    copy.end(grace=0.5)
    assert time.monotonic() - started < 5
    assert copy.process.returncode == -signal.SIGKILL
    assert not alive(child)


def first_line(copy, seconds=10):
    deadline = time.monotonic() + seconds
    while not copy.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    return copy.lines[0][1]


def alive(pid):
    """Running, not a zombie waiting for the init process."""
    time.sleep(0.2)
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_process_that_left_the_copys_process_group_is_found_and_ended(tmp_path):
    # setsid: a new session, outside the copy's process group; it keeps the copy's environment.
    script = (
        "import os, subprocess, sys; "
        f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
        "print(child.pid, flush=True)"
    )
    # A mark of this test's own: another run of the suite on this machine marks its processes too.
    copies = Copies([PY, "-c", script], tmp_path, dict(os.environ), mark=f"run-{os.getpid()}-{tmp_path.name}")
    copy = copies.start()
    copy.process.wait(10)
    escaped = int(first_line(copy))
    assert alive(escaped)
    found = copies.end_all()
    assert list(found) == [escaped] and "time.sleep(60)" in found[escaped]
    assert not alive(escaped)


def test_a_process_of_another_run_is_left_alone(tmp_path):
    other = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"], env={**os.environ, RUN_MARK: "other-run"})
    try:
        assert Copies([PY], tmp_path, dict(os.environ), mark="run-123").end_all() == {}
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


class FakeCopies:
    def __init__(self, *copies):
        self.all = list(copies)


class FakeSession:
    batch = "b1"

    def __init__(self, copies, sent):
        self.copies, self.sent = copies, sent


def test_a_run_is_drawn_from_the_copies_output(tmp_path):
    killed = finished(Copy("copy-1", [PY, "-c", "print(' [x] Received Check 2 task 1....')"], tmp_path, None))
    script = "print('Received a message: Check 2 task 1....'); print('Done'); print(' [x] Received Hello World!')"
    other = finished(Copy("copy-2", [PY, "-c", script], tmp_path, None))
    events = records(FakeSession(FakeCopies(killed, other), {"Check 2 task 1....": "b1.1"}))
    assert [(e["event"], e["worker"], e["redelivered"]) for e in events] == [
        ("started", "copy-1", False),
        ("started", "copy-2", True),
        ("done", "copy-2", True),
    ]  # the producer's own "Hello World!" is not one of the check's tasks: left out
    assert all(e["message_id"] == "b1.1" and e["batch"] == "b1" for e in events)


def test_only_checks_one_to_four_decide_the_exit_status_unless_strict():
    passed = [Verdict(n, "t", "PASS", "seen") for n in "1234"]
    warned = [*passed, Verdict("5a", "t", "WARN", "seen", "reconnect")]
    assert summary(warned, strict=False) == 0
    assert summary(warned, strict=True) == 1
    assert summary([*passed[:3], Verdict("4", "t", "SKIP", "seen")], strict=False) == 1


def test_a_verdict_is_one_line_with_the_fix_when_it_fails():
    assert Verdict("3", "fair dispatch", "FAIL", "held 3", "prefetch 1").line() == (
        "FAIL  3. fair dispatch: held 3 Fix: prefetch 1"
    )
    assert "Fix" not in Verdict("1", "takes", "PASS", "ok", "never shown").line()


# Fair dispatch's evidence, from the broker's samples and the moment a copy first named each task.
def sample(at, ready, **held):
    return Sample(at, ready, {name.replace("_", "-"): count for name, count in held.items()})


def test_a_copy_the_broker_shows_holding_two_while_another_holds_none_is_evidence():
    samples = [sample(1.0, 2, copy_1=1, copy_2=1), sample(2.0, 0, copy_1=2, copy_2=0)]
    assert held_behind(samples, {}, []) == "the broker showed copy-1 holding 2 tasks while copy-2 held none"


def test_a_task_named_late_by_a_copy_while_another_idled_is_evidence_at_any_prefetch():
    # Prefetch 1 with the acknowledgement before the work: copy-1 holds one task at a time, but
    # 'quick 2' sat in its hands behind the long one while copy-2 had nothing.
    samples = [sample(0.5, 0, copy_1=1, copy_2=0), sample(2.0, 0, copy_1=1, copy_2=0)]
    named = {"long": (0.0, "copy-1"), "quick 1": (0.1, "copy-2"), "quick 2": (4.0, "copy-1")}
    assert held_behind(samples, named, list(named)) == (
        "'quick 2' waited at least 3.5 s in copy-1's hands before it named it, while copy-2 held none"
    )


def test_no_evidence_when_every_quick_task_went_to_the_idle_copy():
    samples = [sample(0.5, 0, copy_1=1, copy_2=0), sample(2.0, 0, copy_1=1, copy_2=0)]
    named = {"long": (0.0, "copy-1"), "quick 1": (0.1, "copy-2"), "quick 2": (0.2, "copy-2")}
    assert held_behind(samples, named, list(named)) is None


# Why a copy ended, its own error first, the fix named for what happened.
class Ended:
    def __init__(self, output, status=1):
        self.name, self._output = "copy-1", output
        self.process = argparse.Namespace(returncode=status)

    def output(self):
        return self._output


def test_a_refused_delivery_tag_is_named_with_its_fix_not_a_generic_one():
    output = "Traceback (most recent call last):\n  ...\npika.exceptions.ChannelClosedByBroker: (406, " \
        "'PRECONDITION_FAILED - unknown delivery tag 1')"  # fmt: skip
    seen, fix = diagnose.crash(Ended(output), 5672)
    assert seen.startswith("copy-1 ended (exit status 1): pika.exceptions.ChannelClosedByBroker: (406, ")
    assert "unknown delivery tag" in seen and "drop auto_ack=True" in fix


def test_a_refused_connection_on_a_lab_on_another_port_names_that_port():
    output = "pika.exceptions.AMQPConnectionError: ... ConnectionRefusedError(111, 'Connection refused')"
    _seen, fix = diagnose.crash(Ended(output), 5673)
    assert "connect to port 5673" in fix and "AMQP_PORT=5672" in fix
    assert "start the lab" in diagnose.crash(Ended(output), 5672)[1]


def test_a_copy_that_just_ended_is_told_to_keep_consuming():
    seen, fix = diagnose.crash(Ended(" [*] Waiting for messages.", 0), 5672)
    assert seen == "copy-1 ended (exit status 0):  [*] Waiting for messages. (it ended by itself)".replace("  ", " ")
    assert "keep consuming" in fix


# Whole runs of checks 1-4 (and 5b) against simulated workers.
@pytest.fixture
def quick_checks(monkeypatch):
    """The checks' waits scaled to a simulation: tasks of 0.1 s a dot, answers in 0.1 s."""
    monkeypatch.setattr(session_module, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(session_module, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(checks, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(checks, "QUIET_SECONDS", 1)
    monkeypatch.setattr(checks, "HELD_SECONDS", 0.25)
    monkeypatch.setattr(checks, "WAIT_SECONDS", 6)
    monkeypatch.setattr(checks, "HOLDER_SECONDS", 3)
    monkeypatch.setattr(checks, "AUTO_ACK_GRACE_SECONDS", 0.5)


def run(worker, *, latency=0.1, durable=True, quick=True):
    """Checks 1-4 (and 5 unless quick) on two copies of `worker`: {number: Verdict}."""
    lab = SimulatedLab(worker, latency=latency, durable=durable)
    session = Session(lab, lab, 2)
    args = argparse.Namespace(producer=None, copies=2, command=["python", "worker.py"], quick=quick)
    return {verdict.number: verdict for verdict in run_checks(session, args, env={})}


def statuses(verdicts):
    return "".join(verdict.status[0] for verdict in verdicts.values())


@pytest.mark.parametrize("says", [" [x] Received {task}", "Received a message: {task}", ' [x] Received Ok("{task}")'])
def test_the_tutorials_worker_passes_in_each_languages_wording(quick_checks, says):
    verdicts = run(Worker(says=says))
    assert statuses(verdicts) == "PPPP", verdicts
    assert "copy-1 took 2, copy-2 took 2" in verdicts["1"].seen
    assert "the task went back to task_queue and" in verdicts["2"].seen
    assert "none held behind another while a copy idled" in verdicts["3"].seen


def test_a_worker_with_two_consumers_in_one_process_is_attached_and_graded(quick_checks):
    verdicts = run(Worker(consumers=2))
    assert statuses(verdicts) == "PPPP", verdicts
    assert "copy-1 took 2, copy-2 took 2" in verdicts["1"].seen


def test_a_quick_correct_worker_is_given_a_longer_task_never_reported_as_losing_one(quick_checks):
    # 0.05 s a dot, answers in 0.5 s: check 2's first task is over before the kill.
    verdicts = run(Worker(seconds_per_dot=0.05), latency=0.5)
    assert statuses(verdicts)[:2] == "PP", verdicts
    assert f"killed holding 'Check 2 longer task 1{'.' * checks.LONGER_DOTS}'" in verdicts["2"].seen
    assert "LOST" not in " ".join(v.seen for v in verdicts.values())


def test_a_worker_that_hangs_after_three_tasks_does_not_pass(quick_checks):
    verdicts = run(Worker(hangs_after=3))
    failed = next((v for v in verdicts.values() if v.status == "FAIL"), None)
    assert failed, verdicts
    assert "not all done" in failed.seen or "did not finish" in failed.seen
    assert "holds 1 unacknowledged" in failed.seen or "did not finish" in failed.seen
    assert failed.fix == checks.HANG_FIX


@pytest.mark.parametrize(
    ("mistake", "case"),
    [
        # (the worker; the verdicts of checks 1-4; the check that fails: words it says, words of its fix)
        ("auto-ack", (Worker(ack="auto"), "SFFP", "2", "auto_ack=True (ack_required false)", "basic_ack")),
        ("ack before the work", (Worker(ack="before", seconds_per_dot=0.3), "PFFP", "2",
                                 "acknowledged on receipt, before the work", "basic_ack")),
        ("no prefetch", (Worker(prefetch=0), "PPFP", "3", "prefetch none (0)", "basic_qos(prefetch_count=1)")),
        ("prefetch 10", (Worker(prefetch=10), "PPFP", "3", "prefetch 10; ", "basic_qos(prefetch_count=1)")),
        ("auto-ack with basic_ack left in", (Worker(ack="auto+ack"), "FSSP", "1", "unknown delivery tag",
                                             "drop auto_ack=True")),
        ("a lab on another port", (Worker(refuses="pika.exceptions.AMQPConnectionError: Connection refused"),
                                   "FSSS", "1", "Connection refused", "connect to port 5673")),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)  # fmt: skip
def test_a_common_mistake_fails_the_check_it_should_with_its_fix(quick_checks, monkeypatch, mistake, case):
    worker, expected, failing, says, fix = case
    monkeypatch.setattr(SimulatedLab, "port", 5673)
    verdicts = run(worker)
    assert statuses(verdicts) == expected, verdicts
    assert says in verdicts[failing].seen
    assert fix in verdicts[failing].fix


def test_a_queue_that_is_not_durable_fails_check_4(quick_checks):
    verdicts = run(Worker(), durable=False)
    assert statuses(verdicts) == "PPPF"
    assert verdicts["4"].seen == "task_queue, which the copies consume, is NOT durable (classic)"
    assert "durable=True" in verdicts["4"].fix


def test_a_copy_without_a_sigterm_handler_hands_its_task_back(quick_checks, monkeypatch):
    monkeypatch.setattr(SimulatedLab, "restart", lambda _lab, _timeout: False)  # 5a: not what is tested here
    verdicts = run(Worker(), quick=False)
    assert verdicts["5b"].status == "PASS" and "went back to task_queue and" in verdicts["5b"].seen
    finishing = run(Worker(on_sigterm="finishes"), quick=False)
    assert finishing["5b"].status == "PASS" and "acknowledged before it ended" in finishing["5b"].seen


def test_check_5a_does_not_wait_for_a_copy_that_ended_when_the_broker_restarted(quick_checks):
    lab = SimulatedLab(Worker())
    session = Session(lab, lab, 1)
    session.attach()
    verdict = checks.back_after_restart(session)
    assert verdict.status == "WARN"
    assert verdict.seen == (
        "0 of 1 consumers of the copies are back on task_queue after the broker came back; copy-1 ended (exit "
        "status 1): pika.exceptions.ConnectionClosedByBroker: (320, CONNECTION_FORCED)"
    )


def test_a_task_done_again_before_the_broker_is_next_read_counts_as_done_again(quick_checks):
    # The broker answers slowly on a loaded machine: the surviving copy has taken the killed
    # copy's task and finished it before the first reading after the kill. Its output says so.
    lab = SimulatedLab(Worker(seconds_per_dot=0.05))
    session = Session(lab, lab, 2)
    session.attach()
    (task,) = session.send("Check 2 task", [4])
    victim, how = checks.holder_of(session, task)
    assert how == "the broker"
    killed = victim.signal(signal.SIGKILL)
    lab.counts()  # the broker hands the task back, to the other copy
    time.sleep(0.5)  # which does it (0.2 s) before anyone looks
    outcome, by = checks.after_ending(session, victim, task, killed, seconds=3)
    assert (outcome, by) == ("redone", next(c.name for c in session.current if c is not victim and c.named(task)))


class QueueChannel:
    """A channel on task_queue holding messages (message id, text): basic_get, ack and nack as pika's."""

    def __init__(self, ids):
        self.ready = list(ids)
        self.taken, self.acked, self.requeued = [], [], []

    def queue_declare(self, _queue, passive):
        assert passive
        return argparse.Namespace(method=argparse.Namespace(message_count=len(self.ready)))

    def basic_get(self, _queue):
        if not self.ready:
            return None, None, None
        self.taken.append(self.ready.pop(0))
        return argparse.Namespace(delivery_tag=len(self.taken)), argparse.Namespace(message_id=self.taken[-1]), b""

    def basic_ack(self, tag):
        self.acked.append(self.taken[tag - 1])

    def basic_nack(self, tag, multiple, requeue):
        assert multiple and requeue
        self.requeued = [m for m in self.taken[:tag] if m not in self.acked]


def test_the_checks_own_tasks_are_taken_out_of_task_queue_and_anything_else_put_back(monkeypatch):
    channel = QueueChannel(["abc.3", "students-own.1", "abc.4", None, "abcd.1"])
    broker = Broker.__new__(Broker)
    monkeypatch.setattr(Broker, "channel", contextmanager(lambda _self: (yield channel)))
    assert broker.remove_batch("abc") == 2
    assert channel.acked == ["abc.3", "abc.4"]
    assert channel.requeued == ["students-own.1", None, "abcd.1"]  # another batch's "abcd.1" is not "abc.*"


def test_the_clean_up_names_what_it_removed_and_a_consumer_that_escaped():
    class LeftoverBroker:
        def remove_batch(self, _batch):
            return 3

        def consumers(self):
            return [{"channel_pid": "<0.7.0>"}, {"channel_pid": "<0.9.0>"}]  # the second: not the check's

    class Escaping:
        def end_all(self):
            return {4242: "python -c import time; time.sleep(60)"}

    session = Session(LeftoverBroker(), Escaping(), 2)
    session.owner = {"<0.7.0>": "copy-1"}
    lines = clean_up(session, session.copies)
    assert lines == [
        "ended 1 process(es) your worker started outside its process group: 4242 python -c import time; time.sleep(60)",
        "removed the check's 3 task(s) left in task_queue",
        "1 consumer(s) the copies opened still consume task_queue, from a process the check could not end (it left "
        "the copies' process group): find it with ps and end it",
    ]
