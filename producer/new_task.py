"""Send tasks to the lab's work queue: RabbitMQ tutorial two's new_task.py, grown up in place.

As in the tutorial: connect, declare `task_queue`, publish each task as a persistent
message and print "[x] Sent" -- once the broker confirmed it (confirm_delivery). A
batch of more than ONE_BY_ONE_UP_TO tasks goes through bulk_publish.py instead. With
--wait, the workers' records of the batch (records.py) say who did what, and when
(display.py). Input is checked before anything is sent (command_line.py, workload.py).
"""

import contextlib
import copy
import json
import logging
import sys
import time
import uuid

import pika
from pika.exceptions import AMQPChannelError, AMQPConnectionError, AMQPError

import runs
from bulk_publish import Publisher, SendFailed, StopRequested
from command_line import StopOnSignals, parse_args
from connection import connection_parameters, say_blocked, say_unblocked
from display import Notices, SendProgress, WaitProgress, print_run
from lab import settings as lab_settings
from lab.brokers import open_first, short_error
from lab.figures import finished_tasks, tally
from lab.schema import message_id
from lab.topology import EVENTS_EXCHANGE, QUEUE, QUEUE_ARGUMENTS, declare_events_exchange
from records import EventListener, broker_alarms, task_queue_is_idle
from workload import WORKER_WAIT_SECONDS, InputError, read_tasks

ONE_BY_ONE_UP_TO = 100  # tasks sent as the tutorial sends them, each confirmed before the next


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[Notices()])
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)  # its errors are reported here, in words
    args = parse_args(argv)
    settings = lab_settings.load()
    parameters = connection_parameters(settings)
    try:
        count, tasks = read_tasks(args, settings.max_dots)
    except InputError as exc:
        print(f"new_task.py: {exc}", file=sys.stderr)
        return 2
    stop = StopOnSignals()
    broker = ", ".join(f"{each.host}:{each.port}" for each in parameters)
    try:
        run = send(parameters, args, count, tasks, stop)
    except (SendFailed, AMQPConnectionError, AMQPChannelError) as exc:
        if isinstance(exc, SendFailed) and isinstance(exc.__cause__, StopRequested):
            dropped = exc.__cause__.dropped
            blocked = f"; publishing was blocked (an alarm): the broker drops the {dropped:,} it had not read"
            print(f"\nnew_task.py: {exc.__cause__}; {confirmed(exc.confirmed, count)}{blocked if dropped else ''}",
                  file=sys.stderr)  # fmt: skip
            return stop.status
        why = f"{exc}; {confirmed(exc.confirmed, count)}" if isinstance(exc, SendFailed) else short_error(exc)
        print(f"new_task.py: sending to {broker} failed: {why}", file=sys.stderr)
        return 1
    status = 0 if run is None else show_run(run, args, count)
    if stop():
        print(f"\nnew_task.py: {stop()} while waiting for the records: it stopped looking; all {count:,} tasks were "
              f"confirmed, and those not seen done above stay in {QUEUE} or with a worker until done",
              file=sys.stderr)  # fmt: skip
        return stop.status
    return status


def show_run(run, args, count):
    """Print and save what the records say; exit status 1 if tasks are unaccounted for."""
    print()
    print_run(run, runs.marks_of(run))
    replacing = (runs.TIMELINES / f"{run['name']}.json").exists()
    png = runs.save_run(run["name"], run)
    saved = runs.shown(runs.TIMELINES / run["name"])
    print(f"\nTimeline chart: {runs.shown(png)}" if png else f"\nRecords: {saved}.json (no task done, no chart)")
    if replacing:
        print(f"(It replaced an earlier run saved as {run['name']!r}.)")
    lost = tally(run).get("lost", 0)  # neither done nor rejected; none while it stopped looking
    if lost and "lost because" in run:
        print(f"new_task.py: {lost} of {count} tasks lost: {run['lost because']}", file=sys.stderr)
    elif lost:
        print(f"new_task.py: timed out after {args.timeout:g} s with {count - lost} of {count} tasks done "
              "or rejected; what was seen is above", file=sys.stderr)  # fmt: skip
    return 1 if lost else 0


def send(parameters, args, count, tasks, stop_requested=lambda: None):
    """Send the tasks; with --wait, collect the workers' records of them. Returns the run, if waited for."""
    batch = uuid.uuid4().hex[:12]
    listener = EventListener(parameters, batch) if args.wait else None  # before the first task goes
    name = (args.name or time.strftime("run-%Y%m%d-%H%M%S")) if args.wait else None
    if name:
        announce(parameters, {"event": "sending", "batch": batch, "name": name, "tasks": count, "at": time.time()})
    tasks = messages(tasks, batch, listener.queue if listener else None)
    with open_first(parameters) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
        workers = wait_for_workers(connection, channel, args.expect_workers, stop_requested)
        started = time.monotonic()
        if count <= ONE_BY_ONE_UP_TO:
            units, resent = send_one_by_one(connection, channel, tasks, stop_requested), 0
    if count > ONE_BY_ONE_UP_TO:  # with connections of its own, and a progress bar
        sent = SendProgress(count)
        try:
            resent = Publisher(parameters, tasks, on_confirmed=sent, stop_requested=stop_requested).run()
        finally:
            sent.close()
        units = sent.units
    if count > 1:
        print(f"Sent {count} tasks to {QUEUE} in {time.monotonic() - started:.2f} s, each persistent and confirmed.")
    if resent:
        print(f"[!] {resent} were sent again after a lost connection; those the broker already had arrive twice.")
    if not listener:
        return None
    print(f"Waiting for the {'task' if count == 1 else 'tasks'} to be done (at most {args.timeout:g} s)...")
    progress = WaitProgress(count, units=units)
    try:
        events, ended = listener.collect(
            count, args.timeout, progress, task_queue_is_idle, stop_requested, alarms=broker_alarms
        )
    finally:
        progress.close()
    run = {"name": name, "batch": batch, "workers": max(workers, 1), "sent": count, "events": events}
    account_for_the_unseen(run, ended, listener, others_at_start=workers > args.expect_workers)
    return run


def send_one_by_one(connection, channel, tasks, stop_requested):
    """The tutorial's loop: each task published, confirmed by the broker, then "[x] Sent".
    Returns the units of work sent (dots)."""
    confirmed = units = 0
    # BlockingConnection tells of a block only between its calls, not while basic_publish
    # waits for the confirm: the adapter underneath tells at once (pika 1.4.4).
    connection._impl.add_on_connection_blocked_callback(lambda _c, frame: say_blocked(frame.method.reason, confirmed))
    connection._impl.add_on_connection_unblocked_callback(lambda *_: say_unblocked())
    channel.confirm_delivery()
    for _queue, body, properties in tasks:
        if reason := stop_requested():
            raise SendFailed(reason, confirmed) from StopRequested(reason)
        try:
            channel.basic_publish(exchange="", routing_key=QUEUE, body=body, properties=properties)
        except AMQPError as exc:
            raise SendFailed(short_error(exc), confirmed) from exc
        confirmed, units = confirmed + 1, units + body.count(b".")
        text = body.decode("utf-8", errors="replace")
        print(f" [x] Sent {text if text.isprintable() else repr(text)}")
    return units


def announce(parameters, event):
    """Tell the live dashboard which run a batch is (lab.events, as the workers tell it
    what they do): watching only, so no confirm, and a broker that blocks publishing
    (an alarm) drops it; the connection then gives up after 2 s instead of waiting."""
    impatient = [copy.copy(each) for each in parameters]
    for each in impatient:
        each.blocked_connection_timeout = 2
    with contextlib.suppress(AMQPError, OSError), open_first(impatient) as connection:
        channel = connection.channel()
        declare_events_exchange(channel)
        properties = pika.BasicProperties(content_type="application/json")
        channel.basic_publish(EVENTS_EXCHANGE, "", json.dumps([event]), properties)


def account_for_the_unseen(run, ended, listener, others_at_start):
    """What became of the tasks no worker's record accounts for, as far as the broker said:
    deleted with task_queue, taken by consumers that are not lab workers (done, for the
    broker), or gone some other way (lost). Stopped looking: not known yet."""
    unseen = run["sent"] - len(finished_tasks(run["events"]))
    if ended == "stopped":
        run["stopped looking"] = True
    elif unseen and listener.task_queue_deleted:
        run["lost because"] = f"{QUEUE} was deleted while they were in it"
    elif unseen and ended == "left the queue":
        if listener.other_consumers or others_at_start:
            run["done by others"] = unseen
        else:
            run["lost because"] = (f"they left {QUEUE} with no record from a worker while no consumer but the lab's "
                                   "workers was attached (purged, or expired?)")  # fmt: skip


def confirmed(number, count):
    if not number:
        return f"the broker had confirmed none of the {count:,} tasks"
    return (
        f"the broker had confirmed {number:,} of {count:,} tasks (they stay in {QUEUE}; "
        "re-sending all would send those twice)"
    )


# --- Before sending ------------------------------------------------------------


def wait_for_workers(connection, channel, expected, stop_requested=lambda: None):
    """Warn when fewer workers are attached than are running, and give them time:
    the first worker to attach would otherwise take the whole backlog. Warn, too,
    when consumers other than the lab's workers are attached, or none at all."""
    attached = channel.queue_declare(QUEUE, passive=True).method.consumer_count
    if attached < expected:
        print(
            f"[!] {attached} of {expected} workers attached to {QUEUE}: the first to attach would take "
            f"the whole backlog. Waiting up to {WORKER_WAIT_SECONDS} s for the others...",
            file=sys.stderr,
        )
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while attached < expected and time.monotonic() < deadline and not stop_requested():
            connection.sleep(0.25)
            attached = channel.queue_declare(QUEUE, passive=True).method.consumer_count
        print(f"[!] {attached} of {expected} workers attached; sending now.", file=sys.stderr)
    if attached == 0:
        print(f"[!] No consumer is attached to {QUEUE}: the tasks wait there until a worker starts "
              "(docker compose up -d --scale consumer=3).", file=sys.stderr)  # fmt: skip
    elif attached > expected:
        print(f"[!] {attached} consumers are attached to {QUEUE} but {expected} lab workers run: the others "
              "(your own scripts?) send no records, so --wait counts their tasks as done by others once "
              "they leave the queue.", file=sys.stderr)  # fmt: skip
    return attached


def messages(tasks, batch, reply_to=None):
    """Each task as a persistent message that carries its batch (correlation_id) and
    its number in the batch (message_id "<batch>.<n>"); the workers' records repeat
    both, and go to the reply_to queue if there is one."""
    for number, text in enumerate(tasks, start=1):
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="text/plain",
            correlation_id=batch,
            message_id=message_id(batch, number),
            reply_to=reply_to,
        )
        yield QUEUE, text if isinstance(text, bytes) else text.encode("utf-8"), properties


if __name__ == "__main__":
    sys.exit(main())
