"""A course's task emitter, built on the older tutorial: it reads tasks.csv
(one task a row, dots = seconds of work) and sends each row as a persistent
message to task_queue, declared durable with no queue type (classic style).

The only change: the port comes from AMQP_PORT (default 5672)."""

import csv
import os
import time
import webbrowser

import pika


def offer_rabbitmq_admin_site():
    """Offer to open the RabbitMQ admin site."""
    answer = input("Would you like to monitor RabbitMQ queues? y or n ")
    print()
    if answer.lower() == "y":
        webbrowser.open_new("http://localhost:15672/#/queues")
        print()


def send_message(host: str, queue_name: str, message: str):
    """Send one message to the queue, then close the connection."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(host, port=int(os.environ.get("AMQP_PORT", "5672"))))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue_name, durable=True)
        ch.basic_publish(
            exchange="",
            routing_key=queue_name,
            body=message,
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        )
        print(f" [x] Sent {message}")
    finally:
        conn.close()


if __name__ == "__main__":
    offer_rabbitmq_admin_site()
    with open("tasks.csv", newline="") as input_file:
        for row in csv.reader(input_file):
            send_message("localhost", "task_queue", row[0])
            time.sleep(0.1)
