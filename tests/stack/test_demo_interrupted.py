"""Demos ended early, on the real stack (issue 19; tests/unit/test_demo_endings.py tries
every demo against a fake docker): Ctrl+C at a demo's wait ends, within 10 s, every
process of the demo and its producer container, puts back what the demo changed and
saves no run; a demo whose `docker compose up` really fails stops with the reason and
the fix. tests/stack/test_cluster.py does the same for the node-failure demo."""

import socket
import time

import pytest

from demos import ctrl_c, demo, forget_run, no_run_saved, output_until
from labstack import free_port
from stacklab import CONSUMERS, Lab


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
