"""check-worker.sh's orchestrator (checker/) without a broker: what it reads from a
copy's output, the records it draws a run from, how a copy is ended, the verdicts."""

import signal
import sys
import time

from checker.__main__ import summary
from checker.checks import Verdict, back_after_restart, fair_dispatch, held_behind
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


class DispatchBroker:
    """A broker for check 3: its copies' channels and what list_channels says they hold."""

    def __init__(self, prefetch, held):
        self.consumers = [
            {"channel_pid": f"<0.{n}.0>", "consumer_tag": f"c{n}", "ack_required": True, "prefetch_count": prefetch}
            for n in range(len(held))
        ]
        self.held, self.ctl_calls = held, 0

    def publish(self, _messages):
        pass

    def counts(self):
        return 0, len(self.consumers)

    def unacknowledged(self, channels):
        self.ctl_calls += 1
        return {pid: count for pid, count in zip(sorted(channels), self.held, strict=True)}


class DispatchCopies:
    """Copies that each did their share of check 3's tasks, as their output says, once the
    broker was read `reads_before_done` times."""

    def __init__(self, broker, reads_before_done=0):
        self.broker, self.reads_before_done = broker, reads_before_done
        self.all = []

    def done_by(self, _task):
        return ["a copy"] if self.broker.ctl_calls >= self.reads_before_done else []


def dispatch_session(broker, copies):
    session = Session(broker, copies, size=2)
    session.consumers = broker.consumers
    return session


def test_at_prefetch_1_check_3_reads_the_copies_output_not_the_broker():
    broker = DispatchBroker(prefetch=1, held=[1, 1])
    verdict = fair_dispatch(dispatch_session(broker, DispatchCopies(broker)))
    assert verdict.status == "PASS"
    assert verdict.seen == "prefetch 1; a 4-dot task and 5 quick ones; no task waited behind another"
    assert broker.ctl_calls == 0  # the broker keeps each copy to one: nothing to sample


def test_above_prefetch_1_check_3_samples_the_broker_and_fails_a_copy_that_hoards():
    broker = DispatchBroker(prefetch=10, held=[4, 0])
    verdict = fair_dispatch(dispatch_session(broker, DispatchCopies(broker, reads_before_done=2)))
    assert verdict.status == "FAIL"
    assert "prefetch 10; a 4-dot task and 5 quick ones: at most 4 unacknowledged per copy" in verdict.seen
    assert "one copy held 4 while another held none" in verdict.seen
    assert broker.ctl_calls == 2


class RestartedBroker:
    """A broker that restarts at once and, after, has no consumer; counts the readings."""

    def __init__(self):
        self.readings = 0

    def restart(self, _timeout):
        return True

    def counts(self):
        self.readings += 1
        return 0, 0


def test_check_5a_does_not_wait_for_a_copy_that_ended_when_the_broker_restarted(tmp_path):
    script = "print('pika.exceptions.ConnectionClosedByBroker: (320, CONNECTION_FORCED)'); raise SystemExit(1)"
    ended = finished(Copy("copy-1", [PY, "-c", script], tmp_path, None))
    broker = RestartedBroker()
    session = Session(broker, copies=None, size=1)
    session.current = [ended]
    verdict = back_after_restart(session)
    assert verdict.status == "WARN"
    assert verdict.seen == (
        "0 of 1 copies consume task_queue after the broker came back; copy-1 ended (exit status 1): "
        "pika.exceptions.ConnectionClosedByBroker: (320, CONNECTION_FORCED)"
    )
    assert broker.readings == 1  # no waiting for the 20 s a copy that still runs gets to come back
