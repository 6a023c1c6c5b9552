#!/usr/bin/env python
"""RabbitMQ tutorial two's worker, as a student types it in: one second of work
per dot, acknowledged when done, one task at a time (prefetch 1).

The only change: the port comes from AMQP_PORT (default 5672), for a lab that
publishes the broker on another port."""

import os
import time

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters("localhost", port=int(os.environ.get("AMQP_PORT", "5672")))
)
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
print(" [*] Waiting for messages. To exit press CTRL+C")


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()}")
    time.sleep(body.count(b"."))
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue="task_queue", on_message_callback=callback)

channel.start_consuming()
