"""Fault injection: a batch of tasks runs while workers are killed, stopped and started,
the broker restarts and poison tasks arrive. Then the figures: nothing may be lost."""

import random
import subprocess
import time

from conftest import CONSUMERS, ROOT
from test_nothing_lost import publish

TASKS = 120
SEED = 7


def running_workers(lab):
    return lab.compose("ps", "--status", "running", "--format", "{{.Name}}", "consumer").stdout.split()


def inject_faults(lab, draw):
    """Kill (SIGKILL) and stop (SIGTERM) random workers and start them again, restart
    the broker and send poison, in a random order at random moments.
    Returns what was done, and the message ids of the poison sent."""
    plan = ["kill"] * 4 + ["stop"] * 3 + ["restart broker"] * 2 + ["poison"] * 3
    draw.shuffle(plan)
    done, poison = [], []
    for fault in plan:
        time.sleep(draw.uniform(1, 3))
        workers = running_workers(lab)
        if fault in ("kill", "stop") and workers:
            victim = draw.choice(workers)
            lab.run(["docker", "kill", "--signal", "KILL", victim] if fault == "kill" else ["docker", "stop", victim])
            time.sleep(draw.uniform(0.5, 2))
            lab.run(["docker", "start", victim])
            done.append(f"{fault} {victim.rsplit('-', 2)[-2]}-{victim.rsplit('-', 1)[-1]}")
        elif fault == "restart broker":
            lab.compose("restart", "rabbitmq")
            done.append(fault)
        elif fault == "poison":
            poison_id = f"poison-{len(poison) + 1}"
            message = (poison_id, b"\xff\xfe " + poison_id.encode())
            lab.wait_for(lambda message=message: publish(lab, [message]) is None, "the broker to take the poison")
            poison.append(poison_id)
            done.append(fault)
    lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}")  # everyone back
    return done, poison


def dead_letter_ids(lab):
    """Message ids in dead_letter_queue, read without removing them."""
    ids = []
    with lab.connect() as connection:
        channel = connection.channel()
        while True:
            method, properties, _body = channel.basic_get("dead_letter_queue")
            if method is None:
                return ids  # closing the channel puts them all back
            ids.append(properties.message_id)


def test_nothing_is_lost_under_faults(lab, capsys):
    dead_before = set(dead_letter_ids(lab))
    sending = subprocess.Popen(
        [str(ROOT / "scripts/send.sh"), str(TASKS), "--random", "1-4", "--seed", str(SEED),
         "--wait", "--timeout", "400", "--name", "faults"],
        cwd=ROOT, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lab.wait_for(lambda: lab.queue()[0] < TASKS - CONSUMERS, "the batch to start", timeout=60)
    faults, poison = inject_faults(lab, random.Random(SEED))
    out, err = sending.communicate(timeout=600)
    assert sending.returncode == 0, out[-2000:] + err[-2000:]

    run, _done = lab.saved_run("faults")
    completions = {}
    for event in run["events"]:
        if event["event"] == "done":
            completions.setdefault(event["message_id"], []).append(event)
    confirmed = int(out.split("Sent ", 1)[1].split()[0]) if "each persistent and confirmed" in out else 0
    twice = {task: events for task, events in completions.items() if len(events) > 1}
    dead_lettered = set(dead_letter_ids(lab)) - dead_before
    figures = {
        "tasks sent": TASKS,
        "confirmed": confirmed,
        "completed": len(completions),
        "lost": TASKS - len(completions),
        "completed more than once": len(twice),
        "poison sent": len(poison),
        "dead-lettered": len(dead_lettered),
    }
    with capsys.disabled():
        print(f"\nfault injection ({len(faults)} faults: {', '.join(faults)})")
        print("  " + ", ".join(f"{name} {value}" for name, value in figures.items()))

    assert confirmed == TASKS
    assert figures["lost"] == 0
    # A task done twice was one in flight at a fault: every later completion is a redelivery.
    assert all(event["redelivered"] for events in twice.values() for event in events[1:])
    assert dead_lettered == set(poison)
