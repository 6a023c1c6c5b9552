"""Demos end cleanly or not at all (issue 19), against a fake docker and a fake
broker whose events the test writes (scripts_sandbox.py): a failed `up` stops a demo
with the reason and the fix;
every wait has a deadline; Ctrl+C or SIGTERM ends what the demo started (the
background send.sh and its producer "container") within 10 s, undoes what it
changed, and leaves no run saved."""

import os
import signal
import subprocess
import threading
import time

import pytest
from scripts_sandbox import RUNNING_LAB, Sandbox

import labctl.demo as demo_module
from sessions import end_session, wait_gone
from stacklab import readline_within

DEMOS = ["demo-crash.sh", "demo-restart.sh", "demo-node-failure.sh", "demo-round-robin.sh", "demo-fair-dispatch.sh"]
# The worker consumer-2 is killed; the lab goes on.
KILLABLE_WORKER = """\
case "$*" in
  "compose ps --format {{.Name}} consumer") echo sandbox-consumer-2; exit 0 ;;
  "kill --signal KILL sandbox-consumer-2" | "wait sandbox-consumer-2") exit 0 ;;
  "inspect "*) echo 2026-01-01T00:00:00Z; exit 0 ;;
esac
"""


@pytest.fixture
def started():
    """Demos a test started, whatever is left of them ended at the end."""
    processes = []
    yield processes
    for process in processes:
        end_session(process.pid)
        process.kill()
        process.communicate()


def task_1_reached(sandbox, worker="consumer-2", done=False):
    """The events of the crash demo's batch: sent, Task 1 received by WORKER (and done)."""
    at = time.time()
    task = {"worker": worker, "task": "Task 1....", "message_id": "b1.1", "batch": "b1", "redelivered": False,
            "started": at, "at": at}  # fmt: skip
    sandbox.tell({"event": "sending", "batch": "b1", "name": "crash", "tasks": 6, "at": at})
    sandbox.tell({"event": "received", **task})
    if done:
        sandbox.tell({"event": "done", **task, "finished": at})


def start(sandbox, started, script, **env):
    process = sandbox.start(script, SECONDS_PER_DOT="0.1", **env)
    started.append(process)
    return process


def finish(process, timeout=30):  # a bound, not a speed: under load a demo's ending took over 10 s
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        listing = subprocess.run(
            ["ps", "-o", "pid,stat,args", "--sid", str(process.pid)], capture_output=True, text=True
        )
        os.kill(process.pid, signal.SIGABRT)  # the demo's python: its faulthandler says where it was
        try:
            _, stderr = process.communicate(timeout=5)
        except subprocess.TimeoutExpired as late:  # what it left running holds the pipes open
            stderr = (late.stderr or b"").decode(errors="replace")
        pytest.fail(f"still running {timeout} s later:\n{listing.stdout}\n{stderr[-4000:]}")


def producer_removed(sandbox, pid_of_sender_calls):
    return any(call.startswith("rm --force sandbox-producer-") for call in pid_of_sender_calls)


@pytest.mark.parametrize("demo", DEMOS)
def test_a_failed_up_stops_the_demo_with_the_fix(tmp_path, demo):
    sandbox = Sandbox(tmp_path)  # every docker command fails, as with no engine
    result = sandbox.run(demo, timeout=10)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert "docker compose up failed" in last and "scripts/doctor.sh" in last, result.stderr
    assert "Cannot connect to the Docker daemon" in result.stdout + result.stderr  # the reason, shown
    assert [call for call in sandbox.calls() if not call.startswith("compose up ")] == []


def test_waiting_for_a_task_has_a_deadline(tmp_path, started):
    sandbox = Sandbox(tmp_path, RUNNING_LAB)  # the workers never log a task
    demo = start(sandbox, started, "demo-crash.sh", LAB_WAIT_SECONDS="2")
    _, stderr = finish(demo)
    assert demo.returncode == 1
    assert "gave up after 2 s waiting for a worker to receive 'Task 1....'" in stderr
    assert wait_gone(demo.pid) == []
    assert producer_removed(sandbox, sandbox.calls())


@pytest.mark.parametrize("demo", DEMOS)
def test_ctrl_c_ends_the_sender_and_its_container(tmp_path, started, demo):
    sandbox = Sandbox(tmp_path, RUNNING_LAB)
    process = start(sandbox, started, demo)
    sandbox.wait_for_call("compose run")  # the sender started: the demo waits
    os.killpg(process.pid, signal.SIGINT)  # Ctrl+C: to the terminal's foreground group
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "Stopped the sender (no run saved)" in stderr
    assert wait_gone(process.pid) == []
    assert list((tmp_path / "containers").iterdir()) == [], "a producer container is left"
    assert not list(sandbox.lab.glob("timelines/*.json"))


def test_sigterm_to_the_demo_alone_ends_it_too(tmp_path, started):
    sandbox = Sandbox(tmp_path, RUNNING_LAB)
    process = start(sandbox, started, "demo-crash.sh")
    sandbox.wait_for_call("compose run")
    process.terminate()
    _, stderr = finish(process)
    assert process.returncode == 143, stderr
    assert wait_gone(process.pid) == []
    assert list((tmp_path / "containers").iterdir()) == []


def test_ctrl_c_after_the_kill_starts_the_worker_again(tmp_path, started):
    sandbox = Sandbox(tmp_path, KILLABLE_WORKER + RUNNING_LAB)
    task_1_reached(sandbox)
    process = start(sandbox, started, "demo-crash.sh")
    sandbox.wait_for_call("inspect ")  # killed; now waiting for the sender
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "Stopped early: starting consumer-2 again" in stderr
    calls = sandbox.calls()
    assert "compose start consumer" in calls[calls.index("kill --signal KILL sandbox-consumer-2") :]
    assert wait_gone(process.pid) == []


@pytest.mark.parametrize(("done", "says"), [
    (False, "Killed consumer-2 (SIGKILL) half way through Task 1"),
    (True, "Killed consumer-2 (SIGKILL), but only after it said Task 1 was done"),
])  # fmt: skip
def test_the_crash_demo_says_half_way_only_when_the_worker_had_not_finished_task_1(tmp_path, started, done, says):
    """From the worker's own events: a `done` of Task 1 heard before the kill."""
    sandbox = Sandbox(tmp_path, KILLABLE_WORKER + RUNNING_LAB)
    task_1_reached(sandbox, done=done)
    process = start(sandbox, started, "demo-crash.sh")
    seen = []
    while not (line := readline_within(process.stdout, 15)).startswith("==> Killed"):
        assert line, "".join(seen)
        seen.append(line)
    os.killpg(process.pid, signal.SIGINT)
    finish(process)
    assert line.startswith(f"==> {says}"), line
    assert "half way" not in line or not done


# The lab's `up` works; each `up` notes the PREFETCH the workers would get.
NOTING_PREFETCH = """\
case "$*" in
  "compose up "*) echo "PREFETCH=${PREFETCH:-unset} $*" >>"$here/ups.log"; exit 0 ;;
esac
"""


@pytest.mark.parametrize("demo", ["demo-fair-dispatch.sh", "demo-round-robin.sh"])
def test_ctrl_c_during_round_robin_gives_the_workers_their_prefetch_back(tmp_path, started, demo):
    sandbox = Sandbox(tmp_path, NOTING_PREFETCH + RUNNING_LAB)
    process = start(sandbox, started, demo)
    sandbox.wait_for_call("compose run")  # sending, the workers at no prefetch limit
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "==> Stopped early: bringing back the workers' prefetch (1, from .env)" in stderr
    ups = (tmp_path / "ups.log").read_text().splitlines()
    assert ups[0].startswith("PREFETCH=0 compose up --detach --wait"), ups
    assert ups[-1].startswith("PREFETCH=unset compose up --detach --wait"), ups  # .env's, as compose reads it
    assert ups[-1].endswith("--scale consumer=3"), ups


def test_a_kill_that_fails_stops_the_crash_demo_and_starts_the_worker_again(tmp_path, started):
    """docker kill refused: the demo says so and claims no kill, ends its sender, undoes."""
    behaviour = 'case "$*" in "compose ps --format {{.Name}} consumer") echo sandbox-consumer-2; exit 0 ;; esac\n'
    sandbox = Sandbox(tmp_path, behaviour + RUNNING_LAB)
    task_1_reached(sandbox)
    _, stderr = finish(start(sandbox, started, "demo-crash.sh"))
    assert started[0].returncode == 1, stderr
    assert "Stopped early: starting consumer-2 again" in stderr and "Stopped the sender (no run saved)" in stderr
    assert stderr.strip().splitlines()[-1].startswith("demo-crash.sh: docker kill sandbox-consumer-2 failed")
    assert "compose start consumer" in sandbox.calls()


def test_send_sh_ends_on_sigterm_even_when_its_container_never_appears(tmp_path, started):
    """docker compose run is running but `docker kill` never finds its container (a stuck
    engine): send.sh stops trying after 10 s, ends docker compose itself, and exits 143."""
    sandbox = Sandbox(tmp_path, RUNNING_LAB)
    process = sandbox.start("send.sh", "6", "--wait", FAKE_NEVER_CREATED="1")
    started.append(process)
    sandbox.wait_for_call("compose run")
    time.sleep(0.5)  # into its wait, its traps set
    process.terminate()
    finish(process)
    assert process.returncode == 143
    assert wait_gone(process.pid) == []  # docker compose run (the fake's sleep) ended too
    assert sum(call.startswith("kill --signal TERM sandbox-producer-") for call in sandbox.calls()) > 10


def test_a_sender_that_does_not_end_on_sigterm_is_ended_by_force(monkeypatch):
    """The demo's bound on its sender: a send.sh stuck past SIGTERM is killed with its group."""
    monkeypatch.setattr(demo_module, "SENDER_ENDS_WITHIN", 1)
    removed = []
    monkeypatch.setattr(demo_module, "docker", lambda *args: removed.append(args) or True)
    demo = demo_module.Demo("stuck")
    demo.sender = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300 & wait"], process_group=0)
    group = demo.sender.pid
    time.sleep(0.3)  # its trap set
    demo.stop_sender()
    assert demo.sender is None
    assert [args[:2] for args in removed] == [("rm", "--force")] * 2
    listing = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout
    assert [row for row in listing.splitlines() if row.split() and row.split()[0] == str(group)
            and not row.split()[1].startswith("Z")] == []  # fmt: skip


def test_a_ctrl_c_whose_handler_waits_while_the_demo_waits_for_its_sender_ends_the_wait():
    """Python runs a signal's handler between bytecodes: a Ctrl+C that came just before the demo
    blocked in waitpid() for its sender was handled only once the sender ended (a CI run's hang).
    Here the signal goes to another thread, which leaves the handler pending in the same way."""
    demo = demo_module.Demo("waiting")
    demo.sender = subprocess.Popen(["sleep", "10"])  # before the mask: it must not inherit it
    previous = signal.signal(signal.SIGINT, lambda *_: demo_module._end(130))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread: the other one takes it

    def ctrl_c():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    other = threading.Thread(target=ctrl_c)
    other.start()
    began = time.monotonic()
    try:
        with pytest.raises(demo_module.Ended):
            demo.wait_for_sender()
        assert time.monotonic() - began < 5  # not once the sender ended, 10 s on
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, previous)
        other.join()
        demo.sender.kill()
        demo.sender.wait()


class PopensLock:
    """Popen's waitpid lock, which the demo's wait for its sender must not take: a Ctrl+C's
    Ended raised while it was held left it held (a test run's hang, in the clean-up's wait)."""

    def acquire(self, *_args):
        raise AssertionError("the demo took Popen's waitpid lock while a Ctrl+C may raise Ended")

    __enter__ = acquire


def test_the_demo_waits_for_its_sender_without_popens_lock():
    demo = demo_module.Demo("waiting")
    demo.sender = sender = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 3"])
    real_lock, sender._waitpid_lock = sender._waitpid_lock, PopensLock()
    try:
        with pytest.raises(demo_module.Ended) as ended:
            demo.wait_for_sender()
    finally:
        sender._waitpid_lock = real_lock
    assert ended.value.status == 3 and sender.returncode == 3


def test_a_sender_stopped_after_it_saved_its_run_is_said_to_have_saved_it(tmp_path, started):
    """Ctrl+C during the report: the producer had written the run; the demo said "no run saved"."""
    sandbox = Sandbox(tmp_path, RUNNING_LAB)
    process = start(sandbox, started, "demo-restart.sh")
    sandbox.wait_for_call("compose run")
    (sandbox.lab / "timelines").mkdir(exist_ok=True)
    (sandbox.lab / "timelines" / "restart.json").write_text("{}")  # as the producer saves it
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "==> Stopped the sender (it had saved the run as timelines/restart.json)" in stderr
