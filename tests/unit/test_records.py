"""Collecting records: when task_queue counts as idle (no broker needed)."""

import records


def test_the_queue_counts_as_idle_only_after_looking_idle_for_a_while(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(records.time, "monotonic", lambda: clock[0])
    answers = iter([True, True, False, True, True, True])
    idle = records.SustainedIdle(lambda: next(answers))
    seen = []
    for _ in range(6):
        seen.append(idle())
        clock[0] += records.IDLE_FOR_SECONDS / 2
    assert seen == [False, False, False, False, False, True]  # the False in between starts the wait again


PROMETHEUS_TEXT = """# TYPE rabbitmq_detailed_queue_messages_ready gauge
rabbitmq_detailed_queue_messages_ready{vhost="/",queue="task_queue"} 12
rabbitmq_detailed_queue_messages_ready{vhost="/",queue="task_queue_copy"} 99
rabbitmq_detailed_queue_messages_unacked{vhost="/",queue="task_queue"} 3
rabbitmq_detailed_queue_messages{vhost="/",queue="task_queue"} 1.5e1
rabbitmq_detailed_queue_messages_ready{vhost="other",queue="task_queue"} 7
"""


def test_queue_figures_are_read_from_the_prometheus_text_for_that_queue_only():
    assert records.queue_figures(PROMETHEUS_TEXT, "task_queue") == {
        "messages_ready": 12,
        "messages_unacked": 3,
        "messages": 15,
    }
    assert records.queue_figures(PROMETHEUS_TEXT, "missing") == {}
