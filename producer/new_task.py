"""Send tasks to the lab's work queue: RabbitMQ tutorial two's new_task.py, grown up.

    new_task.py "Hello..."     one task with this text (each dot is one unit of work)
    new_task.py 6              six generated tasks: "Task 1." ... "Task 6."
    new_task.py --file PATH    one task per row of a course-style file (one
                               column, no header, rows like "First task....");
                               PATH - reads standard input

Messages are persistent and every one is confirmed by the broker before the
program reports it as sent. Input is checked before anything is published.
"""

import argparse
import csv
import os
import re
import sys
import time

import pika
from pika.exceptions import AMQPChannelError, AMQPConnectionError, NackError, UnroutableError

QUEUE = "task_queue"
# Exactly the official tutorial's declaration (see consumer/worker.py).
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
LOOKS_LIKE_A_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class InputError(ValueError):
    """The command line or the task file cannot be turned into tasks."""


def tasks_from_argument(argument):
    """A positive whole number N means N generated tasks; any other text is one task."""
    argument = argument.strip()
    if not argument:
        raise InputError("the message is empty")
    if not LOOKS_LIKE_A_NUMBER.fullmatch(argument):
        return [argument]
    if not argument.lstrip("+").isdigit() or int(argument) < 1:
        raise InputError(f"the number of tasks must be a positive whole number, got {argument!r}")
    return [f"Task {number}." for number in range(1, int(argument) + 1)]


def tasks_from_rows(lines, source):
    """The first column of each non-blank row: the course's tasks.csv format."""
    tasks = [row[0].strip() for row in csv.reader(lines) if row and row[0].strip()]
    if not tasks:
        raise InputError(f"{source} has no tasks (expected one task per row)")
    return tasks


def read_tasks(args):
    if args.file is None:
        return tasks_from_argument(args.message_or_count)
    if args.file == "-":
        return tasks_from_rows(sys.stdin, "standard input")
    try:
        with open(args.file, newline="", encoding="utf-8") as rows:
            return tasks_from_rows(rows, args.file)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {args.file}: {exc.strerror if isinstance(exc, OSError) else exc}") from exc


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parse_args(argv):
    parser = OneLineErrorParser(
        prog="new_task.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("message_or_count", nargs="?", help="a task's text, or how many tasks to generate")
    source.add_argument("--file", metavar="PATH", help="send one task per row of this file (- for stdin)")
    return parser.parse_args(argv)


def connection_parameters(env=os.environ):
    missing = [name for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS") if not env.get(name)]
    if missing:
        raise InputError(f"{' and '.join(missing)} not set (they come from .env)")
    return pika.ConnectionParameters(
        host=env.get("RABBITMQ_HOST", "rabbitmq"),
        port=int(env.get("RABBITMQ_PORT", "5672")),
        credentials=pika.PlainCredentials(env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]),
        client_properties={"connection_name": "producer"},
    )


def publish(channel, tasks):
    """Publish each task as a persistent message and wait for the broker's confirm."""
    channel.confirm_delivery()
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="text/plain")
    for text in tasks:
        channel.basic_publish("", QUEUE, text.encode("utf-8"), properties, mandatory=True)
        print(f"[x] Sent {text!r}")


def main(argv=None):
    args = parse_args(argv)
    try:
        tasks = read_tasks(args)
        parameters = connection_parameters()
    except InputError as exc:
        print(f"new_task.py: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        with pika.BlockingConnection(parameters) as connection:
            channel = connection.channel()
            channel.queue_declare(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
            publish(channel, tasks)
    except (AMQPConnectionError, AMQPChannelError, NackError, UnroutableError) as exc:
        print(f"new_task.py: sending to {parameters.host}:{parameters.port} failed: {describe(exc)}", file=sys.stderr)
        return 1
    plural = "task" if len(tasks) == 1 else "tasks"
    print(
        f"Sent {len(tasks)} {plural} to {QUEUE} in {time.monotonic() - started:.2f} s, each persistent and confirmed."
    )
    return 0


def describe(exc):
    """The innermost cause of a pika error, in words (pika nests it in
    exception args and in an `exception` attribute)."""
    inner = getattr(exc, "exception", None) or (exc.args[0] if exc.args else None)
    if isinstance(inner, BaseException):
        return describe(inner)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
