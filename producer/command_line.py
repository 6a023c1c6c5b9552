"""new_task.py's command line (what to send, and how) and its signals: the tasks it
asks for are checked before anything is sent, and Ctrl+C, SIGTERM or SIGHUP ask it
to stop cleanly, saying what the broker had confirmed."""

import argparse
import os
import re
import signal
import sys

from workload import WORKER_WAIT_SECONDS, InputError, check_argument

MAX_NAME = 100  # characters of --name: the run's file names under timelines/
# The command a student typed, named in the refusals: scripts/send.sh sets it.
COMMAND = os.environ.get("LAB_COMMAND") or "new_task.py"
BARE_WORD = re.compile(r"[^\W\d_]+")  # letters only: "six"

USAGE = """Send tasks to the lab's work queue (RabbitMQ tutorial two's new_task.py, grown up).

    new_task.py "Hello..."       one task with this text (each dot is one unit of work)
    new_task.py 6                six generated tasks: "Task 1." ... "Task 6."
    new_task.py 9 --dots 2       nine tasks of two dots each
    new_task.py 9 --heavy 3:6    every 3rd task has 6 dots, the others 1
    new_task.py 9 --random 1-6   1 to 6 dots each, drawn at random (--seed S)
    new_task.py --file PATH      one task per row of a course-style file (one
                                 column, no header, rows like "First task....");
                                 PATH - reads standard input
    add --wait to wait until the tasks are done and see who did what, and when
"""


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def whole_number(text, minimum=0):
    if not text.isdigit() or int(text) < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
    return int(text)


def pair(separator, minimum):
    """An argparse type for "A<separator>B": two whole numbers, A >= minimum."""

    def parse(text):
        first, found, second = text.partition(separator)
        if not found:
            raise argparse.ArgumentTypeError(f"expected A{separator}B, got {text!r}")
        return whole_number(first, minimum), whole_number(second)

    return parse


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def parse_args(argv):
    parser = OneLineErrorParser(
        prog=os.path.basename(COMMAND), description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("message_or_count", nargs="?", help="a task's text, or how many tasks to generate")
    source.add_argument(
        "--message-on-stdin", action="store_true",
        help="read the COUNT or MESSAGE from stdin, byte for byte (scripts/send.sh: Docker would turn bytes that "
        "are not UTF-8 in an argument into U+FFFD)",
    )  # fmt: skip
    source.add_argument("--file", metavar="PATH", help="send one task per row of this file (- for stdin)")
    source.add_argument("--poison", action="store_true", help="send one task the workers reject (not UTF-8)")
    parser.add_argument(
        "--rows-from", metavar="NAME", default="standard input",
        help="with --file -: the file the rows come from, named in errors (scripts/send.sh sets it)",
    )  # fmt: skip
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--dots", type=whole_number, metavar="D", help="dots in each generated task (default 1)")
    shape.add_argument("--heavy", type=pair(":", 1), metavar="K:H", help="every K-th generated task has H dots")
    shape.add_argument("--random", dest="spread", type=pair("-", 0), metavar="LO-HI", help="LO to HI dots at random")
    parser.add_argument("--seed", type=int, help="seed for --random (default 1): the same seed, the same tasks")
    parser.add_argument(
        "--as-text", action="store_true", help="with --message-on-stdin: one bare word is a task's text"
    )
    parser.add_argument("--wait", action="store_true", help="wait until the tasks are done; show who did what")
    parser.add_argument("--timeout", type=seconds, default=600, help="seconds --wait waits at most (default 600)")
    parser.add_argument("--name", help="with --wait, save the run as timelines/NAME.json and NAME.png")
    parser.add_argument(
        "--expect-workers", type=whole_number, default=0, metavar="N",
        help=f"wait up to {WORKER_WAIT_SECONDS} s for N workers to attach before sending (scripts/send.sh sets it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.message_on_stdin:
        args.message_or_count = sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")
        try:
            check_argument(args.message_or_count)
        except InputError as exc:
            parser.exit(2, f"{parser.prog}: {exc}\n")
        word = args.message_or_count.strip()
        if BARE_WORD.fullmatch(word) and not args.as_text:  # a count mistyped more often than a task meant
            parser.exit(2, f"{parser.prog}: '{word}' is not a number of tasks; to send it as the text of one task: "
                        f"{COMMAND} -- {word}\n")  # fmt: skip
    if args.seed is not None and not args.spread:
        parser.error("--seed goes with --random")
    if args.spread and args.spread[0] > args.spread[1]:
        parser.error(f"--random LO-HI needs LO <= HI, got {args.spread[0]}-{args.spread[1]}")
    if args.name and (len(args.name) > MAX_NAME or not re.fullmatch(r"[\w.-]+", args.name, re.ASCII)):
        parser.error(f"--name may use up to {MAX_NAME} letters, digits, '.', '-' and '_', got {args.name[:80]!r}")
    return args


class StopOnSignals:
    """SIGINT, SIGTERM and SIGHUP (Ctrl+C, `timeout`, a closed terminal) ask the program
    to stop; the loops that talk to the broker check it and end cleanly. Python as a
    container's first process would ignore SIGTERM without a handler."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self):
        self.signum = None
        for name in self.SIGNALS:
            signal.signal(getattr(signal, name), self.on_signal)

    def on_signal(self, signum, _frame):
        self.signum = self.signum or signum

    def __call__(self):
        """Why to stop ("stopped by SIGTERM"), or None."""
        return f"stopped by {signal.Signals(self.signum).name}" if self.signum else None

    @property
    def status(self):
        return 128 + self.signum
