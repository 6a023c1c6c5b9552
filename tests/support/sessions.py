"""The processes of a session: a script a test started with start_new_session=True
(its session id is its pid), with whatever it started in the background."""

import os
import signal
import subprocess
import time


def session_processes(session):
    """The processes still running in SESSION (a script started in a session of its own), as 'pid command' lines
    (not zombies: they have ended, their parent has yet to reap them)."""
    listing = subprocess.run(["ps", "-eo", "sid=,stat=,pid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in listing.splitlines()]
    return [row[2] for row in rows if row[0] == str(session) and not row[1].startswith("Z")]


def wait_gone(session, timeout=10):
    deadline = time.monotonic() + timeout
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    return session_processes(session)


def end_session(session):
    """Whatever a failed test left of SESSION."""
    for line in session_processes(session):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
