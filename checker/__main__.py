"""scripts/check-worker.sh's orchestrator (run by it, with the lab's workers stopped):
python -m checker [--copies N] [--producer COMMAND] [--quick] [--strict] [--name NAME] -- COMMAND...

Runs the checks in order, a verdict line each, then a summary; exit status 0 when
checks 1-4 pass (and, with --strict, check 5), 1 otherwise, 130/143/129 on a signal.
Whatever happens, every copy it started is ended before it exits."""

import argparse
import json
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from pika.exceptions import AMQPError

from . import checks, timeline
from .broker import Broker, BrokerError
from .classroom import named_file
from .copies import Copies
from .sandbox import NoRuntime, Sandbox, SandboxError, runtime
from .session import NotAttached, Session

RUN_SECONDS = 240  # the whole run, at most
REFUSED = "PRECONDITION_FAILED"


class Stopped(BaseException):
    """A signal (Ctrl+C, SIGTERM, a closed terminal) or the run's deadline. A BaseException,
    like KeyboardInterrupt: a library's `except Exception` must not swallow it."""


STATUS = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
stopped_by = []  # the first signal that came: the one reported


def on_signal(number, _frame):
    """The first signal stops the run; one after it (bash's trap passes Ctrl+C on as
    SIGTERM) must not cut the clean-up short."""
    stopped_by.append(signal.Signals(number).name)
    if len(stopped_by) > 1:
        return
    first = stopped_by[0]
    raise Stopped(f"stopped by {first}" if first != "SIGALRM" else f"gave up: the check took over {RUN_SECONDS} s")


def parse_args(argv):
    """The arguments as check-worker.sh passes them, already checked there."""
    parser = argparse.ArgumentParser(prog="check-worker")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--producer")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--name", default="check-worker")
    parser.add_argument("--container", action="store_true", help="each copy in a throwaway container (sandbox.py)")
    parser.add_argument("--report", help="also write the verdicts to this file, as JSON")
    parser.add_argument("--refuse-if-busy", action="store_true", help="only say whether task_queue holds tasks")
    parser.add_argument("--refuse-if-missing", type=Path, metavar="FOLDER",
                        help="only say whether the file the command names is in FOLDER")  # fmt: skip
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return args


def report(verdict):
    print(verdict.line(), flush=True)
    return verdict


def run_checks(session, args, env):
    """The verdicts, in order; a check that cannot run is SKIP with the reason."""
    producer = None
    if args.producer:  # first: task_queue is empty and nothing consumes it yet
        print(f"==> Running your producer once: {args.producer}", flush=True)
        producer = checks.producer_persistent(session.broker, args.producer, session.copies, env)
    print(f"==> Starting {args.copies} copies of: {' '.join(args.command)}", flush=True)
    try:
        session.attach()
    except NotAttached as exc:
        return not_attached(session, exc, producer)
    order = [
        ("1", checks.takes_and_finishes),
        ("2", checks.acknowledges_after_work),
        ("3", checks.fair_dispatch),
        ("4", lambda session: checks.durable(session, producer=producer)),
    ]
    if not args.quick:
        order += [("5b", checks.survives_sigterm), ("5a", checks.back_after_restart)]
    verdicts, cannot = [], None
    for number, check in order:
        if cannot and number != "4":  # check 4 reads the queue: it needs no copy
            verdicts.append(report(checks.Verdict(number, checks.TITLES[number], "SKIP", cannot)))
            continue
        verdict = report(checks.runs_on(session, number, check))
        verdicts.append(verdict)
        if not cannot and (checks.ended(session) or verdict.title == "a new copy"):
            cannot = f"could not run: the copies did not keep running (see check {number})"
    return verdicts


def not_attached(session, why, producer):
    """The verdicts when the copies did not all consume task_queue: check 1 fails with the
    copy's own error and its fix, or, when the broker refused their declaration of the
    queue, check 4 does."""
    copy = checks.ended(session)
    refused = copy and next((line.strip() for _at, line in copy.lines if REFUSED in line), None)
    skip = "could not run: the copies did not consume task_queue" + (" (see check 4)" if refused else "")
    if refused:
        first = checks.Verdict("1", checks.TITLES["1"], "SKIP", skip)
    elif copy:
        first = checks.crashed("1", session, copy)
    else:
        first = checks.Verdict("1", checks.TITLES["1"], "FAIL", str(why), checks.CONSUME_FIX)
    return [
        report(first),
        report(checks.Verdict("2", checks.TITLES["2"], "SKIP", skip)),
        report(checks.Verdict("3", checks.TITLES["3"], "SKIP", skip)),
        report(durable_unknown(skip, producer) if not refused else checks.durable(session, refused, producer)),
    ]


def durable_unknown(skip, producer):
    """Check 4 when the copies consumed nothing: only the producer's part, if it ran, is known."""
    if producer is None:
        return checks.Verdict("4", checks.TITLES["4"], "SKIP", skip)
    seen = f"{producer.seen}; the worker's queue: {skip}"
    status = "FAIL" if producer.status == "FAIL" else "SKIP"
    return checks.Verdict("4", "durable queue and persistent messages", status, seen, producer.fix)


def summary(verdicts, strict):
    required = [v for v in verdicts if strict or not v.number.startswith("5")]
    failed = [v for v in required if v.status != "PASS"]
    warned = [v for v in verdicts if v not in required and v.status == "WARN"]
    print()
    print(f"Summary: {len(required) - len(failed)} of {len(required)} required checks passed"
          + (f"; not passed: {', '.join(v.number for v in failed)}" if failed else "")
          + (f"; warnings (beyond the tutorial): {', '.join(v.number for v in warned)}" if warned else ""))  # fmt: skip
    return 1 if failed else 0


def refuse_if_missing(command, folder):
    """Exit status 2, with one line, when the script a python or node command runs (or the program
    given as a path) is not where the copies run: each copy failed check 1 with another
    mistake's fix, after the lab's workers had stopped for nothing."""
    try:
        runtime(command)
        wanted = named_file(command)
    except NoRuntime:  # another program: its arguments are its own (java -cp a.jar:b.jar Worker)
        wanted = command[0] if "/" in command[0] else None
    if wanted is None or (folder / wanted).exists():
        return 0
    print(f"check-worker.sh: no {wanted} in {folder} (the command runs there): run the check from your worker's "
          "folder, or give the file's path", file=sys.stderr)  # fmt: skip
    return 2


def refuse_if_busy(broker):
    """Exit status 1, with why, when task_queue holds tasks, ready or in a worker's hands (exact
    figures: a quorum queue's own count in list_queues can lag by seconds)."""
    ready, _consumers = broker.counts()
    channels = {consumer["channel_pid"] for consumer in broker.consumers()}
    held = ready + sum(broker.unacknowledged(channels).values())
    if held:
        print(f"check-worker.sh: task_queue holds {held} task(s) (ready or being worked on): the check would take "
              "them; let them be done (or remove them yourself), then run it again", file=sys.stderr)  # fmt: skip
    return 1 if held else 0


def clean_up(session, copies):
    """Every copy ended, and whatever of theirs escaped its process group; the check's own
    tasks out of task_queue; consumers of the copies the broker still shows, named. Lines
    for the report."""
    lines = []
    escaped = copies.end_all()
    if escaped:
        shown = "; ".join(f"{pid} {command[:80]}" for pid, command in sorted(escaped.items()))
        lines.append(f"ended {len(escaped)} process(es) your worker started outside its process group: {shown}")
    try:
        removed = session.broker.remove_batch(session.batch)
        if removed:
            lines.append(f"removed the check's {removed} task(s) left in task_queue")
        left = [c for c in session.broker.consumers() if c["channel_pid"] in session.owner]
    except (AMQPError, OSError, BrokerError) as exc:
        return [*lines, f"could not tidy task_queue (the broker did not answer: {exc}); scripts/doctor.sh tells more"]
    if left:
        lines.append(
            f"{len(left)} consumer(s) the copies opened still consume task_queue, from a process the check could not "
            "end (it left the copies' process group): find it with ps and end it"
        )
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.refuse_if_missing:
        return refuse_if_missing(args.command, args.refuse_if_missing)
    if args.refuse_if_busy:
        try:
            return refuse_if_busy(Broker())
        except (AMQPError, OSError, BrokerError) as exc:
            print(f"check-worker.sh: cannot read task_queue from the broker: {exc}", file=sys.stderr)
            return 1
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGALRM"):
        signal.signal(getattr(signal, name), on_signal)
    signal.alarm(RUN_SECONDS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a Python worker's prints reach the pipe at once
    for own in ("PYTHONPATH", "CHECK_FROM"):
        env.pop(own, None)
    broker = Broker()
    session = Session(broker, None, args.copies)
    with ExitStack() as stack:
        try:
            sandbox = Sandbox(f"check-worker-{session.batch}", args.command) if args.container else None
            if sandbox:
                stack.enter_context(sandbox)
        except (SandboxError, OSError, subprocess.SubprocessError) as exc:
            print(f"check-worker.sh: cannot set up the containers the copies run in: {exc}", file=sys.stderr)
            return 1
        if sandbox:
            print(f"==> Each copy runs in a container of its own ({sandbox.image}, the folder read-only, "
                  "1 CPU, 256 MB, the broker its only network peer)", flush=True)  # fmt: skip
        copies = Copies(args.command, os.environ.get("CHECK_FROM", "."), env, session.batch, sandbox)
        session.copies = copies
        return check(session, copies, args, env)


def check(session, copies, args, env):
    """Run the checks, clean up, save the run; the exit status."""
    broker, status, verdicts = session.broker, 1, []
    try:
        ready, consumers = broker.counts()
        if ready or consumers:
            print(f"check-worker.sh: task_queue has {ready} tasks ready and {consumers} consumers with the lab's "
                  "workers stopped (a worker of yours still running?): stop it, then run the check again",
                  file=sys.stderr)  # fmt: skip
            return 1
        verdicts = run_checks(session, args, env)
        status = summary(verdicts, args.strict)
    except Stopped as exc:
        print(f"\ncheck-worker.sh: {exc}; ending the copies", file=sys.stderr)
        status = STATUS.get(stopped_by[0], 1)
    except (AMQPError, OSError, BrokerError) as exc:
        print(f"check-worker.sh: the broker stopped answering: {exc}", file=sys.stderr)
    finally:
        signal.alarm(0)
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)  # the clean-up is not cut short
        for line in clean_up(session, copies):
            print(f"==> Clean-up: {line}", flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps({"status": status, "verdicts": [asdict(v) for v in verdicts]}))
    if copies.all and session.sent:
        path, png = timeline.save(session, args.name)
        print(
            f"Run saved: {Path(path).resolve()}"
            + (f" and {Path(png).resolve()}" if png else "")
            + f" ({timeline.SOURCE})"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
