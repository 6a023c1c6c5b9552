"""scripts/history.sh: the lab's history, the stream lab.history, one line an event.

Every event the workers and send.sh publish to lab.events is kept in the stream; a
reader reads it from any offset, as often as it likes, and removes nothing (a stream's
readers do not compete for messages as task_queue's workers do). Each line: the
event's offset in the stream, when it happened, who, what, and which task.
"""

import os
import re
import signal
import sys
import threading
from datetime import datetime

import pika

from lab.schema import events_of
from lab.text import terminal_text
from lab.topology import HISTORY_STREAM
from labctl import cluster, settings
from labctl.arguments import Parser
from labctl.docker import Stop

USAGE = """\
Usage: scripts/history.sh [-h | --help] [--from WHERE] [--batch NAME] [--follow]
  --from first        everything the stream keeps (the default)
  --from last         the last chunk the broker wrote: the latest events
  --from next         only what comes after now (with --follow)
  --from 2026-12-07T09:30:00   from that time (this machine's time zone; add Z for UTC)
  --from 10m          from that long ago (s, m, h or D)
  --from 1234         from that offset (the number each line starts with)
  --batch NAME        only the batches send.sh --name NAME saved (every run of that name), or one batch id
  --follow            go on printing events as they come, until Ctrl+C
Takes: a second or two; with --follow, until Ctrl+C.
Changes: nothing: reading a stream removes nothing from it."""

NAMED_OFFSETS = ("first", "last", "next")
AGE = re.compile(r"[1-9][0-9]*[smhD]")  # the broker's own syntax for "that long ago"
PREFETCH = 500  # a stream needs one (0 is refused): how many events are on their way at once


def stream_offset(text, now=None):
    """--from's value as the broker's x-stream-offset: a name, an offset, a time or an age."""
    if text in NAMED_OFFSETS or AGE.fullmatch(text):
        return text
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--from takes first, last, next, an offset (0, 1, ...), a time (2026-12-07T09:30:00) "
            f"or an age (10m, 2h, 1D), got '{terminal_text(text, 40)}'"
        ) from None
    moment = moment.astimezone()  # a time without a zone is this machine's
    if moment > (now or datetime.now().astimezone()):
        raise ValueError(f"--from {text} is in the future: nothing has happened then yet")
    return moment


def line(offset, event):
    """One event as a line: offset, time, who, what, which task (text shown as text)."""
    at = datetime.fromtimestamp(event["at"]).strftime("%H:%M:%S.%f")[:-3]
    who = terminal_text(event.get("worker") or "send.sh", 24)
    what = event["event"]
    if "task" in event:
        detail = f"{terminal_text(event['task'], 40)!s} ({terminal_text(event.get('message_id'), 40)})"
        if what == "done":
            detail += f", {event['finished'] - event['started']:.1f} s"
        elif what in ("cut", "rejected"):
            detail += f": {terminal_text(event['reason'], 80)}"
    elif what == "sending":
        detail = f"{event['tasks']} tasks, batch {terminal_text(event['batch'], 40)}"
        detail += f" as {terminal_text(event['name'], 40)}" if event["name"] else ""
    elif what == "quick":
        detail = f"{event['count']} tasks with no work done"
    elif what == "attached":
        detail = f"prefetch {event['prefetch'] or 'unlimited'}"
    else:
        detail = ""
    return f"{offset:>8}  {at}  {who:<12}  {what:<9} {detail}".rstrip()


class BatchFilter:
    """Whether an event is of the batch asked for: a batch id, or send.sh's --name for
    it (learnt from the stream's own `sending` events, so every run of that name)."""

    def __init__(self, name):
        self.name, self.batches = name, {name}

    def __call__(self, event):
        if self.name is None:
            return True
        if event["event"] == "sending" and event["name"] == self.name:
            self.batches.add(event["batch"])
        return event.get("batch") in self.batches


def committed_offset():
    """The stream's last offset written (its leader's committed offset), from the broker;
    None for an empty stream."""
    status = cluster.ctl("rabbitmq-streams", "stream_status", HISTORY_STREAM)
    if status is None:
        raise Stop(f"the broker did not answer for {HISTORY_STREAM}; scripts/doctor.sh tells what is wrong")
    offsets = [member["committed_offset"] for member in status if member.get("role") == "writer"]
    return offsets[0] if offsets and offsets[0] >= 0 else None


def read(channel, offset, follow, end, show):
    """SHOW(offset, event) for each event from OFFSET: to END (the committed offset when
    the reader started) or, with FOLLOW, for ever. Returns how many events were refused."""
    refused = 0
    channel.basic_qos(prefetch_count=PREFETCH)
    for method, properties, body in channel.consume(
        HISTORY_STREAM, arguments={"x-stream-offset": offset}, inactivity_timeout=None if follow else 5
    ):
        if method is None:  # nothing for 5 s short of the end: the stream was truncated meanwhile
            break
        at = int(properties.headers["x-stream-offset"])
        events, bad = events_of(body)
        refused += bad
        for event in events:
            show(at, event)
        channel.basic_ack(method.delivery_tag)  # credit for more; a stream deletes nothing
        if not follow and at >= end:
            break
    return refused


class Reader(threading.Thread):
    """A reader of the stream in a thread of its own, as the stream demo runs three at
    once: every event from OFFSET, kept with its offset, until stopped."""

    def __init__(self, lab, name, offset):
        super().__init__(name=name, daemon=True)
        self.lab, self.offset = lab, offset
        self.events, self.attached, self.stopping = [], threading.Event(), threading.Event()

    def run(self):
        with pika.BlockingConnection(self.lab.connection_parameters(self.name)) as connection:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=PREFETCH)
            channel.basic_consume(HISTORY_STREAM, self.on_message, arguments={"x-stream-offset": self.offset})
            self.attached.set()
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=0.2)

    def on_message(self, channel, method, properties, body):
        at = int(properties.headers["x-stream-offset"])
        self.events += [(at, event) for event in events_of(body)[0]]
        channel.basic_ack(method.delivery_tag)

    def done_of(self, batch):
        """{message id: offset} of the batch's tasks this reader has seen done."""
        return {e["message_id"]: at for at, e in self.events if e["event"] == "done" and e["batch"] == batch}

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


def main(argv=None):
    parser = Parser("history.sh", USAGE)
    parser.add_argument("--from", dest="start", default="first")
    parser.add_argument("--batch")
    parser.add_argument("--follow", action="store_true")
    arguments = parser.parse_args(argv)
    try:
        offset = stream_offset(arguments.start)
    except ValueError as error:
        parser.exit(2, f"history.sh: {error}\n")  # its own words: they say what --from takes
    lab = settings.read()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    end = None if arguments.follow else committed_offset()
    if not arguments.follow and (end is None or offset == "next" or (isinstance(offset, int) and offset > end)):
        offset = None  # nothing to read: the stream is empty, or ends before where it would start
    wanted = BatchFilter(arguments.batch)
    shown = 0

    def show(at, event):
        nonlocal shown
        if wanted(event):
            shown += 1
            print(line(at, event), flush=True)

    refused = 0
    if offset is not None:
        with pika.BlockingConnection(lab.connection_parameters("history.sh")) as connection:
            refused = read(connection.channel(), offset, arguments.follow, end, show)
    if refused:
        print(f"history.sh: {refused} message(s) in the stream were not the lab's events (refused)", file=sys.stderr)
    if not shown:
        hint = "; --from next shows only what comes after now: add --follow" if arguments.start == "next" else ""
        print(f"history.sh: no event{f' of batch {arguments.batch}' if arguments.batch else ''}{hint}",
              file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # its reader stopped reading (history.sh | head): stop too, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more at exit
        sys.exit(141)  # as a program ended by SIGPIPE
    except Stop as stop:
        print(f"history.sh: {stop}", file=sys.stderr)
        sys.exit(stop.status)
