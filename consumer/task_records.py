"""The records of a task's attempt for `send.sh --wait` (lab/schema.py), sent to the
queue the task names in its reply_to property, one JSON list per message, on a
channel of their own in transaction mode: a record is committed before its task is
acknowledged, so a task never leaves task_queue without its record."""

import json
import threading
import time

import pika

HELD_BACK_SECONDS = 2
HELD_BACK = "the broker holds its records back (publishing blocked: a memory or disk alarm?)"
# Persistent, so records waiting for send.sh --wait survive a broker restart.
PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)


class Records:
    """On the connection's thread only, as every pika call."""

    def __init__(self, connection, worker):
        self.channel = connection.channel()
        self.channel.tx_select()
        self.worker = worker

    def send(self, reply_to, record):
        """Publish and commit the record, if anyone waits for it (reply_to)."""
        if not reply_to:
            return
        self.channel.basic_publish("", reply_to, json.dumps([record]), PROPERTIES)
        self.commit()

    def commit(self):
        """Commit, saying so when the broker holds the records back: a memory or disk
        alarm blocks publishers, and pika reports that only once the commit returns."""
        began = time.monotonic()
        held_back = threading.Timer(HELD_BACK_SECONDS, print, [f"[!] {self.worker}: {HELD_BACK}"], {"flush": True})
        held_back.start()
        try:
            self.channel.tx_commit()
        finally:
            held_back.cancel()
        if time.monotonic() - began >= HELD_BACK_SECONDS:
            print(f"[*] {self.worker}: the broker took its records; going on", flush=True)
