"""The stack tests' fixtures: one lab stack for the session (stacklab.Lab), removed,
with its volume, at the end, and the lab as each test finds it. Every event its
workers publish meanwhile is checked against the schema (stacklab.EventTap)."""

import pytest

from stacklab import CONSUMERS, EventTap, Lab


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("timelines"))
    try:
        lab.compose("up", "--detach", "--build", "--wait", "--scale", f"consumer={CONSUMERS}", timeout=900)
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
