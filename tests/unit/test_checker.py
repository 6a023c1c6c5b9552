"""check-worker.sh's orchestrator (checker/) without a broker: what it reads from a
copy's output, the records it draws a run from, how a copy is ended, the verdicts."""

import signal
import sys
import time

from checker.__main__ import summary
from checker.checks import Verdict, held_behind
from checker.copies import Copy, task_text
from checker.session import Session
from checker.timeline import records

PY = sys.executable


def test_a_task_is_read_as_the_worker_printed_it():
    assert task_text("Task 1.") == "Task 1."
    assert task_text("b'Task 1.'") == "Task 1."  # print(" [x] Received", body)
    assert task_text("'Task 1.'") == "Task 1."
    assert task_text(' "Task 1." ') == "Task 1."


def finished(copy, seconds=10):
    copy.process.wait(seconds)
    copy.reader.join(seconds)
    return copy


def test_received_and_done_lines_make_attempts_with_their_moments(tmp_path):
    script = "print(' [x] Received Task 1.'); print(' [x] Done'); print(' [x] Received b\\'Task 2..\\'')"
    copy = finished(Copy("copy-1", [PY, "-c", script], tmp_path, None))
    first, second = copy.attempts()
    assert (first["task"], second["task"]) == ("Task 1.", "Task 2..")
    assert first["started"] <= first["finished"] and second["finished"] is None
    assert copy.done("Task 1.") and not copy.done("Task 2..") and copy.received("Task 2..")


def test_ending_a_copy_ends_what_it_started_even_what_ignores_sigterm(tmp_path):
    script = "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    script += f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']); print(child.pid, flush=True); "
    script += "time.sleep(60)"
    copy = Copy("copy-1", [PY, "-c", script], tmp_path, None)
    deadline = time.monotonic() + 10
    while not copy.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(copy.lines[0][1])
    started = time.monotonic()
    copy.end(grace=0.5)
    assert time.monotonic() - started < 5
    assert copy.process.returncode == -signal.SIGKILL
    time.sleep(0.2)
    try:
        with open(f"/proc/{child}/stat") as stat:
            assert stat.read().split()[2] == "Z"  # ended, not yet reaped by the init process
    except FileNotFoundError:
        pass  # ended and reaped


class FakeCopies:
    def __init__(self, *copies):
        self.all = list(copies)


class FakeSession:
    batch = "b1"

    def __init__(self, copies, sent):
        self.copies, self.sent = copies, sent


def test_a_run_is_drawn_from_the_copies_output(tmp_path):
    killed = finished(Copy("copy-1", [PY, "-c", "print(' [x] Received Check 2 task 1....')"], tmp_path, None))
    script = "print(' [x] Received Check 2 task 1....'); print(' [x] Done'); print(' [x] Received Hello World!')"
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


def attempt(task, started, finished):
    return {"task": task, "started": started, "finished": finished}


def test_a_quick_task_held_behind_a_long_one_while_another_copy_idles_is_seen_from_the_output():
    # No prefetch limit: copy-1 took the long task and two quick ones, which waited 4 s
    # while copy-2 had finished its own at 0.1 s.
    no_prefetch = {
        "copy-1": [attempt("long", 0.0, 4.0), attempt("quick 2", 4.0, 4.0), attempt("quick 4", 4.0, 4.01)],
        "copy-2": [attempt("quick 1", 0.0, 0.05), attempt("quick 3", 0.05, 0.1)],
        "copy-3": [],
    }
    assert held_behind(no_prefetch, sent_at=0.0) == ("copy-1", "quick 2", 4.0)  # copy-3 idled from the start
    # Prefetch 1: the quick ones go to the idle copies at once; nothing waits.
    prefetch_1 = {
        "copy-1": [attempt("long", 0.0, 4.0)],
        "copy-2": [attempt("quick 1", 0.0, 0.05), attempt("quick 3", 0.05, 0.1), attempt("quick 4", 0.1, 0.15)],
        "copy-3": [attempt("quick 2", 0.0, 0.05), attempt("quick 5", 0.05, 0.1)],
    }
    assert held_behind(prefetch_1, sent_at=0.0) is None


class CountingBroker:
    """The broker's answers to held(), one reading after another; counts the rabbitmqctl calls."""

    def __init__(self, readings):
        self.readings, self.ctl_calls = list(readings), 0

    def counts(self):
        return self.readings[0][0], 2

    def unacknowledged(self, _channels):
        self.ctl_calls += 1
        _ready, unacked = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        return {"<0.1.0>": unacked}


def test_held_until_empty_reads_until_nothing_is_held_and_says_what_it_read_last():
    broker = CountingBroker([(1, 1), (0, 1), (0, 0)])
    assert Session(broker, copies=None, size=2).held_until_empty(5) == (0, 0)
    assert broker.ctl_calls == 3  # no reading after the empty one
    stuck = CountingBroker([(0, 2)])
    assert Session(stuck, copies=None, size=2).held_until_empty(0.5) == (0, 2)  # gave up
    assert stuck.ctl_calls >= 2
