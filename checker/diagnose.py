"""Why a copy ended, in its own words first, and the fix named for what happened:
each known failure is a pattern in the copy's output and the fix it calls for."""

import re

ERROR = re.compile(r"error|exception|refused|failed|denied|not found|cannot|traceback", re.IGNORECASE)

# (pattern in the copy's output, what happened, the fix); the first that matches is named.
KNOWN = [
    (
        re.compile(r"unknown delivery tag", re.IGNORECASE),
        "the broker refused an acknowledgement (PRECONDITION_FAILED - unknown delivery tag) and closed the channel",
        "with auto_ack=True the broker counts a task acknowledged when it sends it: drop auto_ack=True and keep "
        "ch.basic_ack(delivery_tag=method.delivery_tag) after the work (acknowledge each delivery once, on the "
        "channel it came on)",
    ),
    (
        re.compile(r"inequivalent arg", re.IGNORECASE),
        "the broker refused the worker's declaration of task_queue (it differs from the lab's durable quorum queue)",
        "declare the queue as the lab does: channel.queue_declare(queue='task_queue', durable=True, "
        "arguments={'x-queue-type': 'quorum'})",
    ),
    (
        re.compile(r"ACCESS_REFUSED|ProbableAuthentication|authentication failure|403", re.IGNORECASE),
        "the broker refused the login",
        "log in as the lab's user (RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS in the lab's .env; guest/guest "
        "by default)",
    ),
    (
        re.compile(r"No module named '?pika|Cannot find module 'amqplib'", re.IGNORECASE),
        "the client library is not installed where the worker runs",
        "install it where your command runs: pip install pika (Node: npm install amqplib)",
    ),
]
PORT_PATTERN = re.compile(r"Connection refused|ECONNREFUSED|AMQPConnectionError|IncompatibleProtocolError", re.I)


def own_error(output):
    """The copy's own error: its last line that reads like one (a traceback's last), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR.search(line) and not line.startswith("Traceback (most recent")]
    return (errors or lines or ["(no output)"])[-1]


def why_ended(output, port):
    """(what happened, fix) for a copy that ended with this output; `port` the lab's AMQP port."""
    for pattern, happened, fix in KNOWN:
        if pattern.search(output):
            return happened, fix
    if PORT_PATTERN.search(output):
        if port != 5672:
            return (
                f"it could not connect: this lab's broker listens on localhost:{port}, not the default 5672",
                f"connect to port {port} (pika.ConnectionParameters('localhost', port={port}); Node: "
                f"amqp://localhost:{port}), or free port 5672 and set AMQP_PORT=5672 in the lab's .env",
            )
        return (
            "it could not connect to the broker",
            "start the lab (docker compose up --detach --wait) and connect to localhost",
        )
    return "it ended by itself", "keep consuming: start_consuming() (Node: keep the process running) until stopped"


def crash(copy, port):
    """One line for a copy that ended: its own error first, then what happened and the fix."""
    happened, fix = why_ended(copy.output(), port)
    seen = f"{copy.name} ended (exit status {copy.process.returncode}): {own_error(copy.output())} ({happened})"
    return seen, fix
