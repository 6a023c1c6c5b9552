"""Demos ended early, on the real stack (issue 19; tests/unit/test_demo_endings.py tries
every demo against a fake docker): Ctrl+C at a demo's wait ends, within 10 s, every
process of the demo and its producer container, puts back what the demo changed and
saves no run; a demo whose `docker compose up` really fails stops with the reason and
the fix. tests/stack/test_cluster.py does the same for the node-failure demo."""

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
from sessions import end_session, session_processes

from labstack import free_port
from stacklab import CONSUMERS, Lab, readline_within

ENDED_WITHIN_SECONDS = 10


@contextmanager
def demo(lab, script, **env):
    """scripts/SCRIPT started as a terminal starts a command: in a process group (and
    session) of its own, stdout and stderr in one pipe. Whatever is left of it is ended
    on the way out."""
    process = subprocess.Popen(
        [str(lab.root / "scripts" / script)], cwd=lab.root, env={**lab.env, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        end_session(process.pid)
        for container in producer_containers(lab):
            lab.run(["docker", "rm", "--force", container])
        process.stdout.close()
        process.wait(timeout=10)


def producer_containers(lab):
    """The test project's producer containers (`docker compose run producer`), running or not."""
    labels = [f"label=com.docker.compose.project={lab.env['COMPOSE_PROJECT_NAME']}",
              "label=com.docker.compose.service=producer"]  # fmt: skip
    listed = lab.run(["docker", "ps", "--all", "--format", "{{.Names}}", *(f"--filter={label}" for label in labels)])
    return listed.stdout.split()


def output_until(process, marker, seconds=120):
    """The demo's output up to and with the first line that holds `marker`."""
    seen = []
    while marker not in (line := readline_within(process.stdout, seconds)):
        assert line, f"the demo ended before {marker!r}:\n{''.join(seen)}"
        seen.append(line)
    return "".join([*seen, line])


def ctrl_c(lab, process):
    """SIGINT to the demo's process group, as a terminal sends it on Ctrl+C. Returns what
    the demo printed after it, once nothing of the demo is left (the test fails if that
    takes more than ENDED_WITHIN_SECONDS)."""
    os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + ENDED_WITHIN_SECONDS
    rest = []
    while line := readline_within(process.stdout, max(deadline - time.monotonic(), 0.1)):
        rest.append(line)
    output = "".join(rest)
    while (left := session_processes(process.pid) + producer_containers(lab)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still there {ENDED_WITHIN_SECONDS} s after Ctrl+C: {left}\n{output}"
    assert process.wait(timeout=1) == 130, output
    assert "Stopped the sender (no run saved)" in output
    return output


def no_run_saved(lab, name):
    return not [path.name for path in lab.timelines.glob(f"{name}.*") if path.suffix in (".json", ".png")]


def forget_run(lab, name):
    for path in lab.timelines.glob(f"{name}.*"):
        path.unlink()


@pytest.mark.parametrize("wait", ["for Task 1 to be half done", "for the batch, the worker killed"])
def test_ctrl_c_during_the_crash_demo_leaves_nothing_running_and_every_worker_back(lab, wait):
    """The crash demo's two waits: before the kill (nothing to put back) and after it (the
    killed worker is started again)."""
    forget_run(lab, "crash")
    with demo(lab, "demo-crash.sh") as process:
        marker = "Waiting for the tasks to be done" if wait.startswith("for Task 1") else "==> Killed "
        output = output_until(process, marker)
        after = ctrl_c(lab, process)
    if marker == "==> Killed ":
        victim = output.split(marker, 1)[1].split()[0]
        assert f"==> Stopped early: starting {victim} again" in after
    else:
        assert "Stopped early" not in after, after
    assert no_run_saved(lab, "crash")
    lab.wait_for(lambda: lab.is_up(CONSUMERS), f"the lab back with {CONSUMERS} workers attached", timeout=30)


@pytest.mark.parametrize("marker", ["Waiting for the tasks to be done", "==> The broker is back"])
def test_ctrl_c_during_the_restart_demo_leaves_nothing_running_and_the_lab_back(lab, marker):
    """The restart demo's two waits: for Task 4 (before the restart) and for the batch after
    it. Not during `docker compose restart rabbitmq`: it takes about a second, and the
    broker starts again even if compose is interrupted (Docker restarts it)."""
    forget_run(lab, "restart")
    with demo(lab, "demo-restart.sh") as process:
        output_until(process, marker)
        after = ctrl_c(lab, process)
    assert "Stopped early" not in after, after  # nothing to put back
    assert no_run_saved(lab, "restart")
    lab.wait_for(lambda: lab.is_up(CONSUMERS), f"the lab back with {CONSUMERS} workers attached", timeout=60)


def test_a_demo_whose_up_fails_on_a_taken_port_stops_with_the_reason_and_the_fix(tmp_path):
    """A lab of its own whose AMQP port this test holds: `docker compose up` really fails."""
    other = Lab(tmp_path)
    other.env["COMPOSE_PROJECT_NAME"] += "-port-taken"
    with socket.create_server(("127.0.0.1", free_port())) as taken:
        port = taken.getsockname()[1]
        try:
            started = time.monotonic()
            result = other.script("demo-crash.sh", env={"AMQP_PORT": str(port), "LAB_WAIT_SECONDS": "60"}, timeout=90)
            took = time.monotonic() - started
        finally:
            other.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", env={"AMQP_PORT": str(port)},
                          check=False)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert took < 60, "within its deadline (LAB_WAIT_SECONDS)"
    last = result.stderr.strip().splitlines()[-1]
    assert "docker compose up failed" in last and "scripts/doctor.sh tells what is wrong and the fix" in last
    assert f"{port}" in result.stdout + result.stderr and "address already in use" in result.stdout + result.stderr
    assert "Sending" not in result.stdout and not list(tmp_path.iterdir())  # no task sent, no run saved
