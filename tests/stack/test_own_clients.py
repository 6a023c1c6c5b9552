"""Clients the lab did not write, run from the host against the test stack's
published AMQP port beside the lab's workers: RabbitMQ tutorial two's scripts
(Python, and the worker in JavaScript) and a course's classic-style pair.

Each script is a real file in clients/, written as the tutorial or course
writes it; only the port is passed in (AMQP_PORT), since the test stack's
differs from 5672. They log in with the client libraries' default, guest/guest.
"""

import os
import subprocess
import sys
from contextlib import contextmanager

from stacklab import CLIENTS, CONSUMERS

TASKS = [f"Own task {n}." for n in range(1, 13)]  # one dot: one second in a foreign worker


@contextmanager
def foreign_workers(lab, tmp_path, commands, env=None):
    """Start each command as a worker process; yield a function that reads their output
    (one string per worker); kill them all at the end, whatever happens."""
    env = {**os.environ, "AMQP_PORT": str(lab.amqp_port), "PYTHONUNBUFFERED": "1", **(env or {})}
    logs = [tmp_path / f"worker-{n}.log" for n in range(len(commands))]
    processes = []
    try:
        for command, log in zip(commands, logs, strict=True):
            with log.open("w") as out:
                processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env))
        lab.wait_for(lambda: lab.queue()[1] == CONSUMERS + len(commands), "the foreign workers to attach", timeout=30)
        yield lambda: [log.read_text() for log in logs]
    finally:
        for process in processes:
            process.kill()
            process.wait()


def assert_all_tasks_done_and_shared(lab, since, outputs):
    """Every task done exactly once, by the lab's workers or the foreign ones, each of
    which did its share; nothing left in task_queue. The lab's workers' lines are read for
    these tasks only: a task of the test before, purged from the queue but already taken,
    may still finish after `since` (counted, it made the sum miss 12)."""

    def by_lab():
        return [task for tasks in lab.done(since).values() for task in tasks if task in TASKS]

    lab.wait_for(
        lambda: len(by_lab()) + sum(o.count("[x] Done") for o in outputs()) >= len(TASKS),
        f"{len(TASKS)} tasks done",
        timeout=60,
    )
    foreign = [
        [line.split("[x] Received ", 1)[1] for line in o.splitlines() if "[x] Received " in line] for o in outputs()
    ]
    assert all(o.count("[x] Done") == len(received) >= 1 for o, received in zip(outputs(), foreign, strict=True)), (
        outputs()
    )
    done = by_lab() + [task for received in foreign for task in received]
    assert sorted(done) == sorted(TASKS), (done, outputs())  # none lost or twice
    assert lab.queue() == (0, CONSUMERS + len(foreign))


def run_client(lab, *args, env=None, **kwargs):
    env = {**os.environ, "AMQP_PORT": str(lab.amqp_port), **(env or {})}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_tutorial_scripts_work_unmodified_beside_the_lab_workers(lab, tmp_path):
    since = lab.now()
    with foreign_workers(lab, tmp_path, [[sys.executable, CLIENTS / "tutorial_worker.py"]] * 2) as outputs:
        for task in TASKS:
            assert (
                run_client(lab, sys.executable, CLIENTS / "tutorial_new_task.py", *task.split())
                == f" [x] Sent {task}\n"
            )
        assert_all_tasks_done_and_shared(lab, since, outputs)


def test_the_tutorials_new_task_and_the_labs_print_the_same_lines_for_hello_world(lab):
    """And the lab's worker prints the tutorial's two lines for it, though it asks for no work."""
    since = lab.now()
    tutorial = run_client(lab, sys.executable, CLIENTS / "tutorial_new_task.py")  # no argument: "Hello World!"
    sent = lab.send("Hello World!")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == tutorial == " [x] Sent Hello World!\n"
    lab.wait_for(lambda: lab.consumer_logs(since).count("[x] Done 'Hello World!'") == 2, "both done", timeout=30)
    assert lab.consumer_logs(since).count("[x] Received 'Hello World!'") == 2


def test_course_scripts_without_a_queue_type_work_beside_the_lab_workers(lab, tmp_path):
    (tmp_path / "tasks.csv").write_text("".join(f"{task}\n" for task in TASKS))
    since = lab.now()
    with foreign_workers(lab, tmp_path, [[sys.executable, CLIENTS / "course_worker.py"]] * 2) as outputs:
        sent = run_client(lab, sys.executable, CLIENTS / "course_emitter.py", cwd=tmp_path, input="n\n")
        assert sent.count("[x] Sent") == len(TASKS)
        assert_all_tasks_done_and_shared(lab, since, outputs)
        assert not any("PRECONDITION_FAILED" in o or "ERROR" in o for o in outputs())
    status, queue = lab.management("queues/%2F/task_queue")
    assert status == 200 and queue["type"] == "quorum" and queue["arguments"] == {"x-queue-type": "quorum"}


def test_a_queue_declared_without_a_type_is_quorum(lab):
    with lab.connect() as connection:
        channel = connection.channel()
        channel.queue_declare("course-style-probe", durable=True)
        try:
            status, queue = lab.management("queues/%2F/course-style-probe")
        finally:
            channel.queue_delete("course-style-probe")
    assert status == 200 and queue["type"] == "quorum"
    vhosts = lab.compose("exec", "rabbitmq", "rabbitmqctl", "--quiet", "list_vhosts", "name", "default_queue_type")
    assert vhosts.stdout.split() == ["name", "default_queue_type", "/", "quorum"]


def test_tutorial_javascript_worker_and_new_task_work_beside_the_lab_workers(lab, tmp_path, amqplib):
    since = lab.now()
    node = {"NODE_PATH": amqplib}
    with foreign_workers(lab, tmp_path, [["node", CLIENTS / "worker.js"]], env=node) as outputs:
        for task in TASKS:
            sent = run_client(lab, "node", CLIENTS / "new_task.js", *task.split(), env=node)
            assert f"[x] Sent '{task}'" in sent
        assert_all_tasks_done_and_shared(lab, since, outputs)


def test_send_wait_beside_a_worker_that_sends_no_records_ends_once_the_queue_is_idle(lab, tmp_path):
    with foreign_workers(lab, tmp_path, [[sys.executable, CLIENTS / "tutorial_worker.py"]]) as outputs:
        # The subprocess timeout, far below --wait's own 600 s, is the check that it ends soon.
        result = lab.send("12", "--wait", "--name", "unseen", timeout=90)
        done_by_tutorial = outputs()[0].count("[x] Done")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{CONSUMERS + 1} consumers are attached to task_queue but {CONSUMERS} lab workers run" in result.stderr
    assert done_by_tutorial >= 1
    assert f"  {done_by_tutorial} left task_queue through consumers that send no records" in result.stdout
    assert f"done by others {done_by_tutorial}, lost 0" in result.stdout
    run, done = lab.saved_run("unseen")
    assert run["done by others"] == done_by_tutorial and len(done) == 12 - done_by_tutorial
