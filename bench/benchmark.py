"""The half of scripts/bench.sh that runs inside the lab's network, beside the
lab's own tools: raw pika loops to compare them with, and a memory probe.

    benchmark.py publish-raw N             publish N persistent messages without confirms; print the rate
    benchmark.py consume-raw PREFETCH N    consume N messages, acknowledging each at once; print the rate
    benchmark.py peak-memory new_task.py ARGS...   run new_task.py; print its peak resident memory

The raw loops do nothing else: no confirms, no records, no output per message.
"""

import resource
import runpy
import sys
import time

import pika

from connection import connection_parameters
from lab import settings as lab_settings
from lab.brokers import open_first
from lab.topology import QUEUE, declare_task_queue


def publish_raw(count):
    with open_first(connection_parameters(lab_settings.load())) as connection:
        channel = connection.channel()
        declare_task_queue(channel)
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        started = time.monotonic()
        for number in range(1, count + 1):
            channel.basic_publish("", QUEUE, f"Task {number}".encode(), properties)
        print(f"{count / (time.monotonic() - started):.0f} msg/s")


def consume_raw(prefetch, count):
    acked, started = 0, None
    with open_first(connection_parameters(lab_settings.load())) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch, method, _properties, _body):
            nonlocal acked, started
            started = started or time.monotonic()
            ch.basic_ack(method.delivery_tag)
            acked += 1
            if acked == count:
                ch.stop_consuming()

        channel.basic_consume(QUEUE, on_message)
        channel.start_consuming()
    print(f"{count / (time.monotonic() - started):.0f} msg/s")


def peak_memory(program, *args):
    sys.argv = [program, *args]
    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code:
            raise
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")


if __name__ == "__main__":
    action, *arguments = sys.argv[1:]
    if action == "publish-raw":
        publish_raw(int(arguments[0]))
    elif action == "consume-raw":
        consume_raw(int(arguments[0]), int(arguments[1]))
    else:
        peak_memory(*arguments)
