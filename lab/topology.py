"""The queues and exchanges of the lab, and the declarations clients make.

task_queue is declared exactly as RabbitMQ's tutorial two declares it, so its
scripts work against the lab; everything else about it (delivery limit,
dead-lettering, consumer timeout) is a policy the broker sets at start
(rabbitmq/start-broker.sh). The broker also declares the exchanges and the
dead-letter queue and the history stream at start (rabbitmq/definitions.json,
checked against these names by tests/unit/test_lab_package.py), so they exist
before any client.
"""

QUEUE = "task_queue"
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
# Where task_queue's policy sends rejected tasks.
DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE = "dead_letters", "dead_letter_queue"
# Classic, not quorum: a quorum queue drops a message handed back 20 times, and
# listing the dead letters (scripts/dead-letters.sh) hands every message back.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "classic"}
# The workers' events for whoever watches (the dashboard): fanout, nothing kept.
EVENTS_EXCHANGE = "lab.events"
# Every event of lab.events, kept: a stream bound to the exchange, which any number of
# readers read in full from an offset of their choosing (a page opened after a batch, a
# dashboard restarted in the middle of one, scripts/history.sh). Retention: whichever
# comes first of a week and 100 MB, applied a segment (5 MB here) at a time, the last
# segment always kept.
HISTORY_STREAM = "lab.history"
HISTORY_ARGUMENTS = {
    "x-queue-type": "stream",
    "x-max-age": "7D",
    "x-max-length-bytes": 100_000_000,
    "x-stream-max-segment-size-bytes": 5_000_000,
}
# The broker's own events (the rabbitmq_event_exchange plugin): consumers attached and
# gone, queues deleted; their details are in the messages' headers (header_text).
BROKER_EVENTS_EXCHANGE = "amq.rabbitmq.event"
# task_queue's consumers attaching and going, as the broker tells them, kept in a stream of
# their own: amq.rabbitmq.event's consumer.created and consumer.deleted pass through this
# headers exchange, which keeps those of task_queue alone. Internal (as amq.rabbitmq.event
# is): no client can publish to it, so the stream holds the broker's word alone, which no
# flood of lab.events (anyone with the login can publish there) pushes out of its retention.
# A reader reads it from the first: who attached, even days ago. A few hundred bytes an
# event: 5 MB is thousands of workers' attaching and going.
CONSUMER_EVENTS_EXCHANGE = "lab.consumer-events"
CONSUMERS_STREAM = "lab.consumers"
CONSUMERS_ARGUMENTS = {
    "x-queue-type": "stream",
    "x-max-age": "7D",
    "x-max-length-bytes": 5_000_000,
    "x-stream-max-segment-size-bytes": 500_000,
}


def header_text(value):
    """A header of a broker event as text: the AMQP clients hand some over as bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def declare_task_queue(channel):
    channel.queue_declare(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)


def declare_dead_letters(channel):
    """The dead-letter exchange and queue (the broker declares them at start too)."""
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, "fanout", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)


def declare_events_exchange(channel):
    channel.exchange_declare(EVENTS_EXCHANGE, "fanout", durable=True)
