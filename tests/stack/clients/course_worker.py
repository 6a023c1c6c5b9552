"""A course's worker, built on the older tutorial: it declares task_queue
durable with no queue type (classic style), takes one task at a time and
acknowledges it when the work (one second per dot) is done.

The only change: the port comes from AMQP_PORT (default 5672)."""

import os
import sys
import time

import pika


def callback(ch, method, properties, body):
    """Do the task, then acknowledge it."""
    message = body.decode()
    print(f" [x] Received {message}")
    time.sleep(message.count("."))
    print(" [x] Done.")
    ch.basic_ack(delivery_tag=method.delivery_tag)


def main(hn: str = "localhost", qn: str = "task_queue"):
    """Listen for tasks on the queue until CTRL+C."""
    parameters = pika.ConnectionParameters(hn, port=int(os.environ.get("AMQP_PORT", "5672")))
    try:
        connection = pika.BlockingConnection(parameters)
    except Exception as e:
        print(f"ERROR: connection to RabbitMQ server failed: {e}")
        sys.exit(1)
    try:
        channel = connection.channel()
        channel.queue_declare(queue=qn, durable=True)
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue=qn, on_message_callback=callback)
        print(" [*] Ready for work. To exit press CTRL+C")
        channel.start_consuming()
    except pika.exceptions.AMQPError as e:
        print(f"ERROR: something went wrong: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        print(" User interrupted continuous listening process.")
        sys.exit(0)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
