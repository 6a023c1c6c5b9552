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

from labstack import ROOT
from stacklab import CONSUMERS, EventTap, Lab, runtime_missing


def pytest_sessionstart(session):
    """The lab's images built once, before any stack starts, and tagged for this run alone
    (LAB_IMAGE_TAG): every stack of the run (one per pytest-xdist worker, the cluster's)
    starts from them, and no build in another clone or test run can swap them underneath."""
    if is_xdist_worker(session) or session.config.option.collectonly:
        return  # the controller built them; its environment, which the worker has, names the tag
    os.environ["LAB_IMAGE_TAG"] = f"test-{os.getpid()}"
    with tempfile.TemporaryDirectory() as timelines:
        Lab(Path(timelines)).compose("build", timeout=900)


def pytest_sessionfinish(session):
    """The run's image tags removed; their layers stay, a cache for the next build."""
    if is_xdist_worker(session) or session.config.option.collectonly:
        return
    with tempfile.TemporaryDirectory() as timelines:
        lab = Lab(Path(timelines))
        images = lab.compose("--profile", "check-worker", "config", "--images", check=False).stdout.split()
        lab.run(["docker", "image", "rm", "--no-prune", *images])


# pytest-xdist hands out a module at a time (--dist loadfile, --no-loadscope-reorder), in the
# order collected: the longest first, so that no stack starts a long module while the others
# finish. By the seconds each took in a four-stack run on two cores (411, 395, 243, 193, 140,
# 134, 93; the others 8 to 63); any module not listed comes after these.
LONGEST_FIRST = (
    "test_check_worker.py",
    "test_cluster.py",
    "test_faults.py",
    "test_lab.py",
    "test_nothing_lost.py",
    "test_dashboard.py",
    "test_dispatch.py",
)


def pytest_collection_modifyitems(items):
    """Orders the stack tests alone: in a run with other layers, theirs come first, as collected."""
    here = Path(__file__).parent

    def rank(item):
        name = item.path.name
        return item.path.parent == here, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's tests keep their order


def is_xdist_worker(session):
    return hasattr(session.config, "workerinput")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("timelines"))
    try:
        lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}", timeout=600)
        with EventTap(lab) as lab.events:
            yield lab
        # That it hears the workers at all: test_dispatch.py (a worker's modules may publish none).
        assert not lab.events.invalid, f"{lab.events.seen} events, off the schema: {lab.events.invalid[:3]}"
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
    """NODE_PATH for amqplib as checker/node/package.json pins it (the tutorial's 0.10.x),
    installed with `npm ci` from their lock file into a folder of the test's own."""
    if not (shutil.which("node") and shutil.which("npm")):
        runtime_missing("node or npm not installed: the JavaScript tutorial worker is not tried")
    modules = tmp_path / "npm"
    modules.mkdir()
    for name in ("package.json", "package-lock.json"):  # the pin the check's Node containers have too
        shutil.copy(ROOT / "checker/node" / name, modules / name)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=modules, check=True, capture_output=True, timeout=120)
    return str(modules / "node_modules")
