"""Nothing lost: long tasks, crashed workers, broker restarts, poison messages, on the real stack."""

import pytest

from stacklab import CONSUMERS, SECONDS_PER_DOT


def events_of(run, kind):
    return [event for event in run["events"] if event["event"] == kind]


def test_a_task_much_longer_than_the_heartbeat_keeps_its_connection(lab):
    heartbeat = 2  # the broker drops a connection after two missed heartbeats
    lab.compose("up", "--detach", "--wait", "--scale", "consumer=1", env={"HEARTBEAT_SECONDS": str(heartbeat)})
    lab.wait_for(lambda: lab.queue()[1] == 1, "one consumer")
    since = lab.now()
    task = "Long" + "." * int(5 * heartbeat / SECONDS_PER_DOT)  # five heartbeats long
    sent = lab.send(task, "--wait", "--name", "long", timeout=120)
    assert sent.returncode == 0, sent.stderr
    run, done = lab.saved_run("long")
    assert len(events_of(run, "started")) == 1 and not done[1]["redelivered"]
    assert done[1]["finished"] - done[1]["started"] >= 5 * heartbeat
    assert "lost its broker connection" not in lab.consumer_logs(since)


@pytest.mark.timeout(420)
def test_crash_demo_redelivers_the_task_of_a_killed_worker(lab):
    result = lab.script("demo-crash.sh", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run, done = lab.saved_run("crash")
    assert sorted(done) == list(range(1, 7))
    victim = result.stdout.split("==> Killed ", 1)[1].split()[0]
    cut = [e for e in events_of(run, "started") if e["worker"] == victim and e["message_id"].endswith(".1")]
    assert cut, "the killed worker had started task 1"
    assert done[1]["worker"] != victim and done[1]["redelivered"]
    (killed,) = run["marks"]  # the demo noted when, and the run kept it
    assert killed["label"] == f"killed {victim}" and cut[0]["started"] < killed["at"] < done[1]["started"]
    assert f"^ killed {victim}" in result.stdout  # under the timeline
    assert len(events_of(run, "done")) == 6  # each task done once
    assert f"task 1 was cut short on {victim}; redelivered to {done[1]['worker']}" in result.stdout
    assert "lost 0" in result.stdout
    assert lab.compose("ps", "--status", "running", "--quiet", "consumer").stdout.count("\n") == CONSUMERS


@pytest.mark.timeout(420)
def test_restart_demo_gets_every_task_done_across_a_broker_restart(lab):
    since = lab.now()
    result = lab.script("demo-restart.sh", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run, done = lab.saved_run("restart")
    assert sorted(done) == list(range(1, 13))
    assert any(event["redelivered"] for event in events_of(run, "started"))  # in progress at the restart
    assert [mark["label"] for mark in run["marks"]] == ["broker restarting", "broker started again"]
    restarting, started = (mark["at"] for mark in run["marks"])
    assert restarting < started < min(e["started"] for e in events_of(run, "started") if e["redelivered"])
    assert "lost 0" in result.stdout
    assert lab.consumer_logs(since).count("lost its broker connection") == CONSUMERS  # and they came back
    lab.wait_for(lambda: lab.queue() == (0, CONSUMERS), "every worker back")
    # The dashboard says it lost the broker in a line, without a traceback in a student's `up`.
    dashboard = lab.compose("logs", "--since", since, "dashboard").stdout
    assert "[!] lost broker rabbitmq" in dashboard and "Traceback" not in dashboard, dashboard[-3000:]


@pytest.mark.timeout(600)
def test_producer_sends_again_what_was_unconfirmed_when_the_broker_restarts(lab):
    lab.compose("stop", "consumer")  # keep every message in the queue, to count them
    count = 100_000
    with lab.sending(str(count), "--dots", "0") as sending:
        lab.wait_for(lambda: lab.queue()[0] > 3000, "the sending to be under way", interval=0.05)
        lab.compose("restart", "rabbitmq")
        out, err = sending.communicate(timeout=300)
    assert sending.returncode == 0, err
    assert f"Sent {count} tasks to task_queue" in out
    assert "were sent again after a lost connection" in out and "lost the connection while sending" in err
    resent = int(out.split("[!] ", 1)[1].split()[0])
    lab.wait_for(lambda: lab.queue()[0] >= count, "the broker back with the tasks")
    numbers = drain(lab)
    assert set(numbers) == set(range(1, count + 1))  # every task arrived
    assert len(numbers) - count <= resent  # and only a re-sent one may arrive twice


def drain(lab):
    """Take every task out of task_queue: their numbers in the batch."""
    numbers = []
    with lab.connect() as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        for method, properties, _body in channel.consume("task_queue", inactivity_timeout=2):
            if method is None:
                break
            numbers.append(int(properties.message_id.rsplit(".", 1)[1]))
            channel.basic_ack(method.delivery_tag, multiple=True)
        channel.cancel()
    return numbers


def test_poison_tasks_go_to_the_dead_letter_queue_and_can_be_requeued(lab):
    lab.purge("dead_letter_queue")
    since = lab.now()
    lab.publish([("poison-1", b"\xff\xfe not text"), ("poison-2", b"   "), ("fine-1", b"Fine task.")])
    lab.wait_for(lambda: lab.consumer_logs(since).count("[!] Rejected") == 2, "both poison tasks rejected")
    lab.wait_for(lambda: "[x] Done 'Fine task.'" in lab.consumer_logs(since), "the good task done")  # others go on
    assert "not valid UTF-8 text; to the dead-letter queue" in lab.consumer_logs(since)
    listed = lab.script("dead-letters.sh", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 tasks in dead_letter_queue" in listed.stdout
    assert "a worker rejected it (not valid UTF-8 text), in task_queue" in listed.stdout  # the rule it broke
    assert "a worker rejected it (an empty task), in task_queue" in listed.stdout
    assert "2 tasks in dead_letter_queue" in lab.script("dead-letters.sh").stdout  # listing removed nothing
    requeued = lab.script("dead-letters.sh", "requeue")
    assert "Moved 2 tasks from dead_letter_queue back to task_queue" in requeued.stdout
    lab.wait_for(lambda: lab.consumer_logs(since).count("[!] Rejected") == 4, "the poison rejected again")
    lab.purge("dead_letter_queue")


def test_send_wait_ends_when_every_task_is_done_or_rejected(lab):
    too_much = "Huge" + "." * 3601  # more work than the workers take a task for
    # send.sh refuses it too, unless its own limit is raised (the workers keep 3600).
    result = lab.send(too_much, "--wait", "--name", "rejected", timeout=60, env={"MAX_DOTS_PER_TASK": "4000"})
    assert result.returncode == 0, result.stderr
    assert "was rejected by consumer-" in result.stdout and "more than the 3600 a task may ask for" in result.stdout
    assert "sent 1, done 0, rejected 1, lost 0" in result.stdout
    lab.purge("dead_letter_queue")
