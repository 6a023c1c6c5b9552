"""A demo's life cycle. It ends cleanly or not at all: Ctrl+C, SIGTERM, a closed
terminal or a failure end what it started in the background (the sender and its
producer container, removed before the producer could save a run: no timeline of a
run that did not happen) and undo what it changed (undo_on_exit)."""

import os
import signal
import subprocess
import sys
import time

from lab.marks import add_mark
from labctl import settings
from labctl.docker import DOCTOR, Stop, compose_or_stop, compose_quietly, docker

SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
CONTAINER_APPEARS_WITHIN = 10  # seconds: send.sh creates its producer container well within
SENDER_ENDS_WITHIN = 20  # seconds from its SIGTERM (scripts/lib.sh's end_producer gives up on its container after 10)


class Ended(Exception):  # noqa: N818 (a signal, not an error)
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Demo:
    def __init__(self, name):
        self.name = name  # the run's name, timelines/NAME.json
        self.settings = settings.read()
        # How long the demo waits for anything (the lab to start, a task to arrive, a
        # node to rejoin) before it gives up.
        self.wait_seconds = self.settings.wait_seconds
        self.sender = None
        self.runs_before = {}  # timelines/*.json as they were when the sender started
        self.undo = None  # (what it does, docker compose arguments)

    def __enter__(self):
        for number, status in SIGNALS.items():
            signal.signal(number, lambda *_, status=status: _end(status))
        return self

    def __exit__(self, kind, error, _traceback):
        for number in (signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)  # a second Ctrl+C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.stop_sender()
        if self.undo and error is not None:
            what, args = self.undo
            print(f"==> Stopped early: {what}", file=sys.stderr, flush=True)
            if compose_quietly(*args, out=sys.stderr) != 0:
                print(f"==> That failed; run: docker compose {' '.join(args)}", file=sys.stderr)
        return False

    def undo_on_exit(self, what=None, *compose_args):
        """If the demo ends early, say WHAT and run docker compose COMPOSE_ARGS; none: nothing to undo."""
        self.undo = (what, compose_args) if what else None

    def up(self, *args, **env):
        compose_or_stop("up", "--detach", "--wait", "--wait-timeout", f"{self.wait_seconds:g}", *args,
                        env={**os.environ, **env})  # fmt: skip

    def start_workers(self, workers, prefetch):
        """The lab with WORKERS workers holding PREFETCH tasks each (0: no limit); workers
        with another prefetch are re-created."""
        print(f"==> {workers} workers with {f'prefetch {prefetch}' if prefetch else 'no prefetch limit'}", flush=True)
        self.up("--scale", f"consumer={workers}", PREFETCH=str(prefetch))

    def seconds_of_work(self, dots):
        return dots * self.settings.seconds_per_dot

    def send(self, *args):
        """scripts/send.sh ARGS --wait in the background, in a process group of its own: a
        Ctrl+C reaches the demo alone, which ends the sender as stop_sender says."""
        self.runs_before = self.saved_runs()
        self.sender = subprocess.Popen([settings.ROOT / "scripts/send.sh", *map(str, args), "--wait"],
                                       process_group=0)  # fmt: skip
        os.environ["LAB_DASHBOARD_SHOWN"] = "1"  # the first send said where the dashboard is: enough

    def wait_for_sender(self):
        # os.waitpid polled, not Popen's wait() or poll(). A Ctrl+C raises Ended at the next
        # bytecode: raised inside Popen's own waitpid lock it left the lock held, and the
        # clean-up's wait for the sender waited for ever; and a Ctrl+C that came just before a
        # blocking waitpid() was handled only once the sender ended (both seen in test runs).
        while not (ended := os.waitpid(self.sender.pid, os.WNOHANG))[0]:
            time.sleep(0.1)
        status = self.sender.returncode = os.waitstatus_to_exitcode(ended[1])
        self.sender = None
        if status != 0:
            raise Ended(status)

    def stop_sender(self):
        """The background send.sh, if any, ended with its producer container: the container
        removed first, once it exists (a producer asked to stop would save what it had of the
        run; one removed is killed), then send.sh, which removes a container created meanwhile."""
        if self.sender is None:
            return
        container = f"{self.settings.project}-producer-{self.sender.pid}"  # as scripts/lib.sh's producer names it
        deadline = time.monotonic() + CONTAINER_APPEARS_WITHIN  # send.sh may be creating it
        while not docker("rm", "--force", container) and self.sender.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self.sender.terminate()
        try:
            self.sender.wait(timeout=SENDER_ENDS_WITHIN)
        except subprocess.TimeoutExpired:  # it did not end (its own bound is 10 s): ended by force
            os.killpg(self.sender.pid, signal.SIGKILL)
            self.sender.wait()
        docker("rm", "--force", container)
        self.sender = None
        saved = [path.name for path, when in self.saved_runs().items() if self.runs_before.get(path) != when]
        what = f"it had saved the run as timelines/{saved[0]}" if saved else "no run saved"
        print(f"==> Stopped the sender ({what}); the tasks it had sent stay in task_queue for the workers",
              file=sys.stderr, flush=True)  # fmt: skip

    def saved_runs(self):
        """The runs in timelines/, each with when it was last written."""
        return {path: path.stat().st_mtime_ns for path in self.settings.timelines.glob("*.json")}

    def wait_until(self, what, happened, every=1.0):
        """happened() every EVERY seconds until it is true; after the demo's wait, Stop."""
        deadline = time.monotonic() + self.wait_seconds
        while not happened():
            if time.monotonic() > deadline:
                self.give_up(what)
            time.sleep(every)

    def give_up(self, what):
        raise Stop(f"gave up after {self.wait_seconds:g} s waiting for {what}; {DOCTOR}")

    def forget_faults(self):
        (self.settings.timelines / f"{self.name}.marks").unlink(missing_ok=True)

    def note_fault(self, at, label):
        """A mark on the run's timelines (lab/marks.py): AT in epoch seconds or ISO 8601."""
        self.settings.timelines.mkdir(exist_ok=True)
        add_mark(self.settings.timelines / f"{self.name}.marks", at, label)


def run_bash(function, *args):
    """A function of scripts/lib.sh, which the bash entry points share (the producer's
    container runs through it, one way for every script)."""
    return subprocess.run(["bash", "-c", f'source scripts/lib.sh && {function} "$@"', function, *args],
                          cwd=settings.ROOT).returncode  # fmt: skip


def _end(status):
    raise Ended(status)
