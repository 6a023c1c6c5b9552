"""send.sh --wait's progress on a terminal: a pseudo-terminal, so that rich draws its live
bar as a user sees it. It shows the work done (dots) and no time left (issue 19: a time
left from a rate of tasks said 1 s with nine 4-second tasks to do)."""

import os
import re
import select
import subprocess
import time

from sessions import end_session
from stacklab import CONSUMERS

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = re.compile(r"(\d+)/(\d+) done, (\d+) running, ([\d,]+)/([\d,]+) units of work")


def on_a_terminal(lab, *args, seconds=120):
    """scripts/send.sh ARGS with a pseudo-terminal as its output: what it drew there, without
    the colours and cursor moves, and its exit status."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [str(lab.root / "scripts/send.sh"), *args], cwd=lab.root, env=lab.env,
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    drawn, deadline = [], time.monotonic() + seconds
    try:
        while True:
            assert time.monotonic() < deadline, f"still drawing after {seconds} s"
            if select.select([controller], [], [], 1)[0]:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: every process that had the terminal has ended
                    break
                if not chunk:
                    break
                drawn.append(chunk)
        return ESCAPES.sub("", b"".join(drawn).decode("utf-8", errors="replace")), process.wait(timeout=10)
    finally:
        os.close(controller)
        end_session(process.pid)


def test_on_a_terminal_the_wait_shows_the_work_left_as_it_is_and_no_time_left(lab):
    """The restart demo's batch, 12 tasks of 4 dots on 3 workers: every state of the bar
    shows as work done the dots of the tasks done, never more."""
    tasks, dots = 12, 4
    screen, status = on_a_terminal(lab, str(tasks), "--dots", str(dots), "--wait", "--name", "on-a-terminal")
    assert status == 0, screen
    bars = [tuple(int(figure.replace(",", "")) for figure in bar) for bar in BAR.findall(screen)]
    assert len({bar for bar in bars if bar[0] < tasks}) >= 2, f"no live bar drawn:\n{screen}"
    for done, count, running, units_done, units in bars:
        assert (count, units) == (tasks, tasks * dots) and running <= CONSUMERS
        assert units_done == done * dots, f"{units_done} units shown done with {done} tasks of {dots} done"
    waiting = screen.split("Waiting for the tasks to be done", 1)[1]
    assert not re.search(r"\bleft\b", waiting), waiting
    assert "lost 0" in waiting
