"""How finished tasks are settled with the broker, a group at a time.

First their records are committed, one message (a JSON list) per queue that
asked for them (send.sh --wait names one in reply_to), on a channel in
transaction mode; then the tasks are acked (or rejected); then, if anyone
waits for records or a task took time, one round trip on the consuming
channel proves the broker took the acks (it answers only after them, in
order). So a task never leaves task_queue without its record, and an ack that
never arrived (the broker closed the channel first, say after a delivery
timeout) is followed by a "cut" record that takes the "done" back: the broker
gives that task to another worker. Tasks nobody waits for that took no time
have no records and no round trip: they come by the thousand.
"""

import json
import sys
import threading
import time
from dataclasses import dataclass, field

import pika
from pika.exceptions import AMQPChannelError, AMQPError

from lab.schema import took_time

HELD_BACK_SECONDS = 2
HELD_BACK = "the broker holds its records back (publishing blocked: a memory or disk alarm?)"
# Persistent, so records waiting for send.sh --wait survive a broker restart.
RECORD_PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)


@dataclass
class Session:
    """One connection's life, shared by the connection's thread and the work thread."""

    connection: pika.BlockingConnection
    channel: pika.adapters.blocking_connection.BlockingChannel
    records: pika.adapters.blocking_connection.BlockingChannel  # in transaction mode
    prefetch: int = 1
    worker: str = "worker"  # its name, for the log
    events: object = None  # events.Events, told what was settled
    over: threading.Event = field(default_factory=threading.Event)
    pending: list = field(default_factory=list)  # (reply_to, record, delivery tag or None, log line or None)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unsettled: set = field(default_factory=set)  # delivery tags not yet acked or rejected
    taken_back: str | None = None  # why the broker took back what the worker holds (its consumer cancelled)

    def add(self, reply_to, record, delivery_tag=None, line=None):
        """Queue a record (with the task's settlement and log line, if it ended).
        Returns whether it is the first one queued since the last settle."""
        with self.lock:
            self.pending.append((reply_to, record, delivery_tag, line))
            return len(self.pending) == 1

    def tell(self, reply_to, record, delivery_tag=None, line=None):
        """From any thread: add, and have the connection's thread settle soon."""
        if self.add(reply_to, record, delivery_tag, line):
            self.connection.add_callback_threadsafe(self.settle)

    def settle(self):
        """On the connection's thread: publish the queued records, then settle their tasks."""
        with self.lock:
            pending, self.pending = self.pending, []
        if not pending:
            return
        self.publish_records((reply_to, record) for reply_to, record, _tag, _line in pending)
        settled = [(reply_to, record, tag) for reply_to, record, tag, _line in pending if tag is not None]
        if self.taken_back and settled:
            self.take_back(settled, f"the broker took it back first ({self.taken_back})")
            return
        try:
            for _to, record, tag in settled:
                if record["event"] == "rejected":  # dead-lettered by task_queue's policy
                    self.channel.basic_reject(tag, requeue=False)
                    self.unsettled.discard(tag)
            self.acknowledge([tag for _to, record, tag in settled if record["event"] == "done"])
            if any(reply_to or took_time(record) for reply_to, record, _tag in settled):
                self.channel.basic_qos(prefetch_count=self.prefetch)  # answered only after the acks
        except AMQPChannelError as exc:
            self.take_back(settled, f"the broker closed the channel first ({exc})")
            raise
        if self.events:
            self.events.settled(record for _to, record, _tag, _line in pending)
        lines = "".join(f"{line}\n" for _to, _record, _tag, line in pending if line)
        if lines:
            sys.stdout.write(lines)  # one write for the group
            sys.stdout.flush()

    def publish_records(self, records):
        by_queue = {}
        for reply_to, record in records:
            if reply_to:
                by_queue.setdefault(reply_to, []).append(record)
        for reply_to, group in by_queue.items():
            self.records.basic_publish("", reply_to, json.dumps(group), RECORD_PROPERTIES)
        if by_queue:
            self.commit_records()

    def commit_records(self):
        """Commit the records, saying so when the broker holds them back: a memory or disk
        alarm blocks publishers, and pika reports that only once the commit returns."""
        began = time.monotonic()
        held_back = threading.Timer(HELD_BACK_SECONDS, print, [f"[!] {self.worker}: {HELD_BACK}"], {"flush": True})
        held_back.start()
        try:
            self.records.tx_commit()
        finally:
            held_back.cancel()
        if time.monotonic() - began >= HELD_BACK_SECONDS:
            print(f"[*] {self.worker}: the broker took its records; going on", flush=True)

    def acknowledge(self, tags):
        """Ack these deliveries: with one multiple ack when no earlier delivery is still unsettled."""
        if not tags:
            return
        self.unsettled.difference_update(tags)
        last = max(tags)
        if all(tag > last for tag in self.unsettled):
            self.channel.basic_ack(last, multiple=True)
        else:
            for tag in tags:
                self.channel.basic_ack(tag)

    def take_back(self, settled, why):
        """The settlements did not reach the broker: say so, in the records and the log."""
        cut = [(reply_to, {**record, "event": "cut", "reason": f"not acknowledged: {why}"})
               for reply_to, record, _tag in settled]  # fmt: skip
        try:
            self.publish_records(cut)
        except AMQPError:
            pass  # the connection is gone too: send.sh --wait sees the attempt unfinished anyway
        if self.events:
            self.events.settled(record for _to, record in cut)
        for _to, record in cut:
            print(f"[!] Not acknowledged {record['task']!r} ({record['worker']}): {why}; "
                  "it gives the task to another worker", flush=True)  # fmt: skip
