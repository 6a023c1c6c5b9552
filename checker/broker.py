"""What the check asks of the lab's broker: over AMQP from this machine (the
queue's counts, its own tasks, a message looked at and put back) and through
rabbitmqctl in the broker's container (who consumes, with what prefetch and
acknowledgement mode, and how many tasks each holds)."""

import json
import os
import subprocess
import time
from contextlib import contextmanager

import pika
from pika.exceptions import AMQPError

from lab.topology import QUEUE

CTL_TIMEOUT = 30


class BrokerError(Exception):
    """The broker did not answer as expected (one line, for the report)."""


class Broker:
    def __init__(self, env=os.environ):
        bind = env.get("LAB_BIND_ADDRESS", "127.0.0.1")
        self.host = "127.0.0.1" if bind in ("", "0.0.0.0") else bind
        self.port = int(env.get("AMQP_PORT") or 5672)
        self.parameters = pika.ConnectionParameters(
            self.host,
            self.port,
            credentials=pika.PlainCredentials(env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]),
            client_properties={"connection_name": "check-worker"},
            connection_attempts=3,
            retry_delay=1,
        )

    @contextmanager
    def channel(self):
        connection = pika.BlockingConnection(self.parameters)
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def counts(self):
        """(tasks ready, consumers) of task_queue, straight from the broker."""
        with self.channel() as channel:
            method = channel.queue_declare(QUEUE, passive=True).method
            return method.message_count, method.consumer_count

    def publish(self, messages):
        """Publish (message id, text) as persistent tasks to task_queue, each confirmed."""
        with self.channel() as channel:
            channel.confirm_delivery()
            for message_id, text in messages:
                properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id)
                channel.basic_publish("", QUEUE, text.encode(), properties)

    def peek(self):
        """(properties, text) of the first task ready in task_queue, put back at once; None if none."""
        with self.channel() as channel:
            method, properties, body = channel.basic_get(QUEUE)
            if method is None:
                return None
            channel.basic_nack(method.delivery_tag, requeue=True)
            return properties, body.decode(errors="replace")

    def remove_batch(self, batch, most=1000):
        """Take the check's own tasks (message ids "<batch>.<n>") out of task_queue, leaving any
        other message where it was; how many were taken."""
        with self.channel() as channel:
            ready = channel.queue_declare(QUEUE, passive=True).method.message_count
            removed, last = 0, None
            for _ in range(min(ready, most)):
                method, properties, _body = channel.basic_get(QUEUE)
                if method is None:
                    break
                last = method.delivery_tag
                if str(properties.message_id or "").startswith(f"{batch}."):
                    channel.basic_ack(method.delivery_tag)
                    removed += 1
            if last is not None:
                channel.basic_nack(last, multiple=True, requeue=True)  # the others, back
            return removed

    def ctl(self, *args):
        """rabbitmqctl ARGS in the broker's container, its JSON answer."""
        command = [
            "docker",
            "compose",
            "exec",
            "-T",
            "rabbitmq",
            "rabbitmqctl",
            "--quiet",
            *args,
            "--formatter",
            "json",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=CTL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"rabbitmqctl {args[0]} gave no answer within {CTL_TIMEOUT} s") from exc
        if result.returncode != 0:
            raise BrokerError(f"rabbitmqctl {args[0]} failed: {(result.stderr or result.stdout).strip()[:200]}")
        return json.loads(result.stdout or "[]")

    def consumers(self):
        """task_queue's consumers: channel_pid, consumer_tag, ack_required, prefetch_count."""
        rows = self.ctl("list_consumers", "queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count")
        return [row for row in rows if row["queue_name"] == QUEUE]

    def unacknowledged(self, channels):
        """{channel pid: tasks it holds unacknowledged}, for these channels."""
        rows = self.ctl("list_channels", "pid", "messages_unacknowledged")
        return {row["pid"]: row["messages_unacknowledged"] for row in rows if row["pid"] in channels}

    def queues(self):
        """{queue name: its row}: durable, type, messages_ready, messages_unacknowledged."""
        rows = self.ctl("list_queues", "name", "durable", "type", "messages_ready", "messages_unacknowledged")
        return {row["name"]: row for row in rows}

    def restart(self, timeout):
        """Restart the broker's container; True once it takes connections again within `timeout`."""
        subprocess.run(["docker", "compose", "restart", "rabbitmq"], capture_output=True, timeout=timeout, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.counts()
                return True
            except (AMQPError, OSError):
                time.sleep(1)
        return False
