"""The worker's two threads, as in pika's basic_consumer_threaded example: the
connection's thread consumes, keeps the connection alive (heartbeats) and settles
finished tasks; the work thread does one task at a time (worker.Worker.work), so a
task longer than a heartbeat costs nothing."""

import queue
import threading
import time

from pika.exceptions import AMQPError

# Left of the stop grace period for closing the connection before Docker kills us.
CLOSE_MARGIN_SECONDS = 1.5
TICK_SECONDS = 0.5  # how often the connection's thread looks at stop requests and log summaries
END = object()  # tells the work thread that the session is over


def start_work_thread(worker, session):
    """The work thread of a session, and the queue that hands it its deliveries."""
    deliveries = queue.Queue()
    thread = threading.Thread(target=work_loop, args=(worker, session, deliveries), daemon=True)
    thread.start()
    return deliveries, thread


def work_loop(worker, session, deliveries):
    """Runs in the work thread: one task at a time, in delivery order."""
    while True:
        task = deliveries.get()
        if task is END or session.over.is_set():
            return
        if worker.stopping.is_set():
            continue  # not started: it goes back to the queue when the connection closes
        try:
            if not worker.work(session, task):
                return
        except AMQPError:  # the session ended meanwhile: the broker redelivers the task
            return


def tick(worker, connection, channel, session):
    """Every TICK_SECONDS on the connection's thread: stop if asked, settle, sum up quick tasks."""
    if worker.stopping.is_set():
        channel.stop_consuming()  # the signal handler only sets the event: pika is not re-entrant
        return
    session.settle()
    worker.events.flush()
    if summary := worker.quick_tasks.summary():
        print(summary, flush=True)
    connection.call_later(TICK_SECONDS, lambda: tick(worker, connection, channel, session))


def finish_task_in_hand(worker, connection, work):
    """Let the task in hand finish within the stop grace period, acknowledging it."""
    deadline = time.monotonic() + max(0.0, worker.config.stop_grace_seconds - CLOSE_MARGIN_SECONDS)
    while work.is_alive() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.2)
    connection.process_data_events(time_limit=0)  # the last acknowledgement
