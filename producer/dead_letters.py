"""What is in the dead-letter queue, and putting it back.

    dead_letters.py list       each dead-lettered task: why, from where, when
    dead_letters.py requeue    move them all back to task_queue (after a fix)

A worker rejects a task it cannot process (see consumer/worker.py), and
task_queue's policy dead-letters it, as it does a task delivered too many
times without an acknowledgement. Listing takes each message and hands it
back unacknowledged, so nothing is removed.
"""

import argparse
import os
import signal
import sys
from datetime import datetime

from pika.exceptions import AMQPChannelError, AMQPConnectionError

from connection import connection_parameters
from lab import settings as lab_settings
from lab.brokers import open_first, reset, short_error
from lab.tasks import PoisonTask, read_task
from lab.topology import DEAD_LETTER_QUEUE, QUEUE, declare_dead_letters, declare_task_queue

WHY = {
    "rejected": "a worker rejected it",
    "delivery_limit": "delivered too many times without an acknowledgement",
    "expired": "it expired",
    "maxlen": "the queue was full",
}


def declare(channel):
    declare_dead_letters(channel)
    return channel.queue_declare(DEAD_LETTER_QUEUE, passive=True).method.message_count


def describe_death(properties, body=b""):
    """ "a worker rejected it (not valid UTF-8 text), in task_queue at 21:04:05" from the
    x-death header, and for a rejected task the workers' own rule it broke (lab.tasks)."""
    deaths = (properties.headers or {}).get("x-death") or [{}]
    death = deaths[0]
    why = WHY.get(death.get("reason"), death.get("reason", "unknown reason"))
    if death.get("reason") == "rejected":
        why += f" ({poison_reason(body)})"
    when = death.get("time")
    at = f" at {when:%Y-%m-%d %H:%M:%S}" if isinstance(when, datetime) else ""
    return f"{why}, in {death.get('queue', '?')}{at}"


def poison_reason(body):
    """Why the workers' rules refuse this task today (MAX_DOTS_PER_TASK as now set)."""
    try:
        read_task(body, lab_settings.load().max_dots)
    except PoisonTask as poison:
        return str(poison)
    return "a valid task now: requeue it"


def list_dead_letters(channel, count):
    if not count:
        print(f"{DEAD_LETTER_QUEUE} is empty.")
        return
    print(f"{count} task{'s' if count != 1 else ''} in {DEAD_LETTER_QUEUE}:")
    for number in range(1, count + 1):
        method, properties, body = channel.basic_get(DEAD_LETTER_QUEUE)
        if method is None:
            break
        print(f"{number:>4}. {body[:70]!r}: {describe_death(properties, body)} (id {properties.message_id})")
    # Not acknowledged: closing the channel puts every one back.
    print("Put them back in task_queue with: scripts/dead-letters.sh requeue")


def requeue(channel, count, moved):
    """Move `count` dead letters to task_queue, one at a time: each is published and
    confirmed before it is acknowledged. `moved` counts them (moved.append)."""
    channel.confirm_delivery()
    declare_task_queue(channel)
    for _ in range(count):
        method, properties, body = channel.basic_get(DEAD_LETTER_QUEUE)
        if method is None:
            break
        channel.basic_publish("", QUEUE, body, properties)  # confirmed before the ack below
        channel.basic_ack(method.delivery_tag)
        moved.append(properties.message_id)
    print(f"Moved {len(moved)} task{'s' if len(moved) != 1 else ''} from {DEAD_LETTER_QUEUE} back to {QUEUE}.")


def end_on_signals(connection, moved):
    """Ctrl+C, SIGTERM or SIGHUP end the program at once, even while a memory or disk alarm
    blocks its publishing: the connection is reset, so the broker drops the task being moved
    (unconfirmed) and puts back the one it was taken from (unacknowledged)."""

    def stop(signum, _frame):
        reset(connection)
        print(f"dead_letters.py: stopped by {signal.Signals(signum).name} after moving {len(moved)}; "
              f"the others stay in {DEAD_LETTER_QUEUE}", file=sys.stderr, flush=True)  # fmt: skip
        os._exit(128 + signum)

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), stop)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dead_letters.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "requeue"])
    args = parser.parse_args(argv)
    try:
        with open_first(connection_parameters(lab_settings.load())) as connection:
            moved = []
            end_on_signals(connection, moved)
            channel = connection.channel()
            count = declare(channel)
            if args.action == "list":
                list_dead_letters(channel, count)
            else:
                requeue(channel, count, moved)
    except (AMQPConnectionError, AMQPChannelError) as exc:
        print(f"dead_letters.py: {short_error(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
