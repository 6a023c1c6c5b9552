"""The lab's queues as the producer's programs declare them.

The workers declare the same (consumer/broker.py): each image stays
self-contained, and tests/unit/test_images_agree.py fails when the two disagree.
"""

QUEUE = "task_queue"
# Exactly the official tutorial's declaration, so its scripts work against the lab;
# the rest (delivery limit, dead-lettering) is set by policy (rabbitmq/start-broker.sh).
QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
# Where task_queue's policy sends rejected tasks.
DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE = "dead_letters", "dead_letter_queue"
# Classic, not quorum: a quorum queue drops a message handed back 20 times,
# and listing the dead letters hands every message back.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "classic"}
