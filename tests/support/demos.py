"""A demo run as a terminal runs it, for the stack tests that end it early: started in a
session of its own, read line by line with a deadline, interrupted as Ctrl+C does."""

import os
import signal
import subprocess
import time
from contextlib import contextmanager

from sessions import end_session, session_processes
from stacklab import readline_within

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
    """No timeline of run NAME: neither its records (.json) nor its chart (.png)."""
    return not [path.name for path in lab.timelines.glob(f"{name}.*") if path.suffix in (".json", ".png")]


def forget_run(lab, name):
    for path in lab.timelines.glob(f"{name}.*"):
        path.unlink()
