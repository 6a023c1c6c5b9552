"""The stack tests' fixtures: the lab's images built once, one lab stack for the session
(stacklab.Lab; one per pytest-xdist worker, each its own compose project), removed,
with its volume, at the end, the lab as each test finds it, and amqplib for the
tutorial's JavaScript clients. Every event the lab's workers publish meanwhile is
checked against the schema (stacklab.EventTap)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from stacklab import CLIENTS, CONSUMERS, EventTap, Lab


def pytest_sessionstart(session):
    """The lab's images built once, before any stack starts: with pytest-xdist each worker
    process starts stacks of its own from these images (compose.yaml names them)."""
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without -n
        with tempfile.TemporaryDirectory() as timelines:
            Lab(Path(timelines)).compose("build", timeout=900)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("timelines"))
    try:
        lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}", timeout=600)
        with EventTap(lab) as events:
            yield lab
        assert events.seen and not events.invalid, f"{events.seen} events, off the schema: {events.invalid[:3]}"
    finally:
        lab.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture
def lab(stack):
    """The test stack with all consumers attached and an empty queue."""
    stack.up()
    stack.purge()  # what a failed test left behind must not fail the next ones too
    stack.wait_for(lambda: stack.queue()[0] == 0, "an empty task_queue")
    return stack


@pytest.fixture
def amqplib(tmp_path):
    """NODE_PATH for amqplib as the clients' package.json pins it (the tutorial's 0.10.x),
    installed with `npm ci` from their lock file into a folder of the test's own."""
    if not (shutil.which("node") and shutil.which("npm")):
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the JavaScript client in CI")
        pytest.skip("node or npm not installed: the JavaScript tutorial worker is not tried")
    modules = tmp_path / "npm"
    modules.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(CLIENTS / name, modules / name)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=modules, check=True, capture_output=True, timeout=120)
    return str(modules / "node_modules")
