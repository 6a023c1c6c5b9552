"""The demos, one function each, run by scripts/demo-*.sh:
    python -m labctl.demos crash|restart|node-failure|round-robin|fair-dispatch|stream [ARGS]
Each function's docstring is its demo's --help. They learn what happened from the
lab's own events (labctl/events.py) and the broker (labctl/cluster.py), never from
the containers' logs."""

import argparse
import inspect
import json
import os
import sys
import time

from lab.figures import done_records, per_worker
from labctl import cluster, history
from labctl.arguments import Parser
from labctl.demo import Demo, Ended, run_bash
from labctl.docker import DOCTOR, Stop, compose_or_stop, docker, output
from labctl.events import Events
from labctl.settings import SettingsError

TAKES_WORKERS = ("round-robin", "fair-dispatch")


def positive_whole_number(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"WORKERS must be a positive whole number, got '{text}'")
    return int(text)


def parse(argv):
    demo = argv[0]
    parser = Parser(f"demo-{demo}.sh", inspect.getdoc(DEMOS[demo]))
    if demo in TAKES_WORKERS:
        parser.add_argument("workers", nargs="?", default=3, type=positive_whole_number)
    return demo, parser.parse_args(argv[1:])


def task_reached_a_worker(demo, events, number, dots):
    """The `received` event of task NUMBER (of DOTS dots) of this demo's batch (the batch
    its `sending` event names), once a worker has it; Stop after the demo's wait."""
    deadline = time.monotonic() + demo.wait_seconds
    sending = events.wait_for(lambda e: e["event"] == "sending" and e["name"] == demo.name, deadline)
    batch = sending and sending["batch"]
    received = sending and events.wait_for(
        lambda e: e["event"] == "received" and e["message_id"] == f"{batch}.{number}", deadline
    )
    if not received:
        demo.give_up(f"a worker to receive 'Task {number}{'.' * dots}'")
    return received


def kill(container):
    """SIGKILL to CONTAINER; when it died, as docker inspect tells it."""
    if not docker("kill", "--signal", "KILL", container):
        raise Stop(f"docker kill {container} failed; {DOCTOR}")
    output("wait", container)  # until it has stopped: then FinishedAt is when it died
    return output("inspect", "--format", "{{.State.FinishedAt}}", container).strip()


def crash(demo, _args):
    """Demo: a worker dies (SIGKILL) in the middle of a task. It never acknowledged
    the task, so the broker gives it to another worker, flagged as redelivered,
    and the batch completes: nothing is lost.

    Usage: scripts/demo-crash.sh [-h | --help]
    Takes: about 20 s.
    Changes: starts the lab if needed (3 workers, prefetch 1), kills a worker and
    starts it again; saves the run as timelines/crash.json and crash.png.
    """
    demo.start_workers(3, 1)
    # Looked up now: once a worker has Task 1, the kill must not wait for docker compose.
    containers = output("compose", "ps", "--format", "{{.Name}}", "consumer").split()
    demo.forget_faults()
    events = Events(demo.settings)
    print("==> Sending 6 tasks of 4 dots; a worker will be killed in the middle of Task 1", flush=True)
    demo.send(6, "--dots", 4, "--name", demo.name)
    received = task_reached_a_worker(demo, events, 1, dots=4)
    victim = received["worker"]
    time.sleep(max(demo.seconds_of_work(2) - (time.time() - received["at"]), 0))  # half way through Task 1
    demo.undo_on_exit(f"starting {victim} again", "start", "consumer")
    container = next((name for name in containers if name.endswith(f"-{victim}")), victim)
    demo.note_fault(kill(container), f"killed {victim}")
    events.listen(1)  # what the worker had said before it died
    done = [e for e in events.heard if e["event"] == "done" and e["message_id"] == received["message_id"]]
    events.close()
    if any(event["worker"] == victim for event in done):
        print(f"==> Killed {victim} (SIGKILL), but only after it said Task 1 was done (this machine is busy:\n"
              "    the kill came late), so Task 1 may not come back; run the demo again to see a redelivery",
              flush=True)  # fmt: skip
    else:
        print(f"==> Killed {victim} (SIGKILL) half way through Task 1", flush=True)
    demo.wait_for_sender()
    print(f"\n==> Starting {victim} again", flush=True)
    demo.undo_on_exit()
    compose_or_stop("start", "consumer")


def restart(demo, _args):
    """Demo: the broker restarts in the middle of a batch. Queued tasks are on disk
    (a durable quorum queue, persistent messages); tasks in progress were never
    acknowledged, so they are delivered again; the workers and send.sh
    reconnect by themselves. Every task is done anyway.

    Usage: scripts/demo-restart.sh [-h | --help]
    Takes: about half a minute.
    Changes: starts the lab if needed (3 workers, prefetch 1) and restarts the
    broker; saves the run as timelines/restart.json and restart.png.
    """
    demo.start_workers(3, 1)
    demo.forget_faults()
    events = Events(demo.settings)
    print("==> Sending 12 tasks of 4 dots; the broker will restart in the middle of the batch", flush=True)
    demo.send(12, "--dots", 4, "--name", demo.name)
    task_reached_a_worker(demo, events, 4, dots=4)
    events.close()  # the broker it listens to is about to go
    time.sleep(demo.seconds_of_work(2))  # the second round of tasks is half done
    print("==> Restarting the broker (docker compose restart rabbitmq)", flush=True)
    demo.note_fault(time.time(), "broker restarting")
    demo.undo_on_exit("starting the broker, in case the restart was cut short", "start", "rabbitmq")
    compose_or_stop("restart", "rabbitmq")
    demo.undo_on_exit()
    broker = output("compose", "ps", "--quiet", "rabbitmq").strip()
    demo.note_fault(output("inspect", "--format", "{{.State.StartedAt}}", broker).strip(), "broker started again")
    print("==> The broker is back; the workers reconnect", flush=True)
    demo.wait_for_sender()


def node_failure(demo, _args):
    """Demo: a three-node cluster loses the node that leads task_queue (SIGKILL) in
    the middle of a batch. task_queue has a member on every node: the two left
    are a majority, elect a new leader and go on; the workers that were connected
    to the dead node move to the others; nothing confirmed is lost. Then the node
    starts again and catches up.

    Usage: scripts/demo-node-failure.sh [-h | --help]    (uses compose.cluster.yaml; see docs/cluster.md)
    Takes: about two minutes (more the first time: the cluster starts).
    Changes: turns the lab into a three-node cluster (and leaves it one), kills
    the node that leads task_queue and starts it again; saves the run as
    timelines/node-failure.json and node-failure.png.
    """
    if not os.environ.get("COMPOSE_FILE"):  # the cluster, unless COMPOSE_FILE says otherwise
        # ":" on every platform (Compose's default separator on Windows is ";").
        os.environ.update(COMPOSE_FILE="compose.yaml:compose.cluster.yaml", COMPOSE_PATH_SEPARATOR=":")
    print(f"==> A cluster of three nodes ({', '.join(cluster.NODES)}) and 3 workers", flush=True)
    demo.up("--scale", "consumer=3")
    print(cluster.members_table(), flush=True)
    demo.forget_faults()
    events = Events(demo.settings)
    print("==> Sending 30 tasks of 2 dots; the node that leads task_queue will be killed in the middle", flush=True)
    # RabbitMQ 4.3 gives back the tasks held by a dead node's workers after 60 s
    # (consumer_disconnected_timeout): the timeout leaves them room.
    demo.send(30, "--dots", 2, "--name", demo.name, "--timeout", 600)
    task_reached_a_worker(demo, events, 10, dots=2)
    events.close()  # it may listen on the node about to go
    leader = cluster.leader()
    before = cluster.workers_by_node()
    container = output("compose", "ps", "--quiet", leader).strip()
    killed_at = time.monotonic()
    demo.undo_on_exit(f"starting {leader} again", "start", leader)
    demo.note_fault(kill(container), f"killed {leader}")
    print(f"==> Killed {leader} (SIGKILL), the leader of task_queue", flush=True)
    demo.wait_until("a new leader of task_queue", lambda: cluster.leader() not in (None, leader))
    print(f"==> New leader of task_queue: {cluster.leader()} ({time.monotonic() - killed_at:.1f} s after the kill, "
          "as seen here)", flush=True)  # fmt: skip
    demo.wait_for_sender()
    print("\n==> Workers that moved to another node:")
    after = cluster.workers_by_node()
    moved = [f"  {worker} connected to {after[worker]}" for worker, node in sorted(before.items())
             if node == leader and after.get(worker, leader) != leader]  # fmt: skip
    print("\n".join(moved) or f"  (none: no worker was connected to {leader})")
    print(f"\n==> Starting {leader} again", flush=True)
    demo.undo_on_exit()
    compose_or_stop("start", leader)
    demo.wait_until(f"{leader} to catch up", cluster.in_sync)
    print(f"==> {leader} rejoined: task_queue has three members in sync (the same commit index)")
    print(cluster.members_table())


def round_robin(demo, args):
    """Demo: round-robin dispatch. With no prefetch limit the broker deals tasks out
    in turn, like cards: with N workers, the worker that gets task i also gets
    tasks i+N, i+2N ..., whether or not it is still busy with the previous ones.

    Usage: scripts/demo-round-robin.sh [-h | --help] [WORKERS]     (default 3)
    Takes: about 10 s with 3 workers.
    Changes: re-creates the workers (WORKERS of them, no prefetch limit) and
    leaves them so; `docker compose up -d --scale consumer=3` brings back the
    default (prefetch 1). Stopped early (Ctrl+C), it brings it back itself.
    Saves the run as timelines/round-robin.json and .png.
    """
    workers = args.workers
    demo.start_workers(workers, 0)
    demo.undo_on_exit(f"bringing back the workers' prefetch ({demo.settings.prefetch}, from .env)",
                      "up", "--detach", "--wait", "--scale", f"consumer={workers}")  # fmt: skip
    print(f"==> Sending {3 * workers} equal tasks and waiting for them", flush=True)
    demo.send(3 * workers, "--name", demo.name)
    demo.wait_for_sender()
    demo.undo_on_exit()  # done: the workers stay round-robin, as the last line says
    print("\n==> Who got which task", flush=True)
    run_bash("producer", "report.py", "round-robin", "timelines/round-robin.json")
    print("\nThe workers keep running with no prefetch limit; docker compose up -d --scale consumer=3 brings back "
          "prefetch 1.")  # fmt: skip


def fair_dispatch(demo, args):
    """Demo: fair dispatch (prefetch 1) against round-robin, on a skewed workload:
    every N-th of 3N tasks is six times heavier. Round-robin deals every heavy
    task to the same worker; with prefetch 1 a busy worker gets no new task, so
    the heavy ones spread out. Runs the same tasks on the same workers twice and
    prints the two side by side: load per worker, makespan, the lower bound
    max(total work / N, longest task) and each makespan's ratio to it.

    Usage: scripts/demo-fair-dispatch.sh [-h | --help] [WORKERS]     (default 3)
    Takes: about 40 s with 3 workers.
    Changes: re-creates the workers twice (WORKERS of them, no prefetch limit,
    then prefetch 1); saves the runs under timelines/. Stopped early (Ctrl+C), it
    gives the workers back the prefetch of .env.
    """
    workers = args.workers
    workload = (3 * workers, "--heavy", f"{workers}:6")
    demo.start_workers(workers, 0)
    # Stopped before the fair half, the workers would stay round-robin for the student's next send.
    demo.undo_on_exit(f"bringing back the workers' prefetch ({demo.settings.prefetch}, from .env)",
                      "up", "--detach", "--wait", "--scale", f"consumer={workers}")  # fmt: skip
    print(f"==> Round-robin: {3 * workers} tasks; tasks {workers}, {2 * workers} and {3 * workers} are six times "
          "heavier", flush=True)  # fmt: skip
    demo.send(*workload, "--name", "round-robin-skewed")
    demo.wait_for_sender()
    print()
    demo.start_workers(workers, 1)
    demo.undo_on_exit()
    print("==> Fair dispatch: the same tasks", flush=True)
    demo.send(*workload, "--name", "fair-skewed")
    demo.wait_for_sender()
    print("\n==> Side by side", flush=True)
    run_bash("producer", "report.py", "compare", "timelines/round-robin-skewed.json", "timelines/fair-skewed.json",
             "--name", "fair-dispatch")  # fmt: skip


def stream(demo, _args):
    """Demo: the same six tasks seen both ways. On task_queue, a work queue, three
    workers compete: each task goes to one of them and is gone once acknowledged
    (2, 2 and 2). On lab.history, a stream of the lab's events, three readers
    share nothing: each reads every event. A reader started after the batch from
    `first` reads it all again; one from `next` reads only what comes after.

    Usage: scripts/demo-stream.sh [-h | --help]
    Takes: about 15 s.
    Changes: starts the lab if needed (3 workers, prefetch 1) and sends 6 tasks;
    saves the run as timelines/stream.json and stream.png. Reading the stream
    removes nothing from it.
    """
    demo.start_workers(3, 1)
    readers = [history.Reader(demo.settings, f"reader-{n}", "next") for n in (1, 2, 3)]
    attach(demo, readers)
    print("==> Three readers of lab.history from next; sending 6 tasks to task_queue", flush=True)
    demo.send(6, "--name", demo.name)
    demo.wait_for_sender()
    batch = json.loads((demo.settings.timelines / f"{demo.name}.json").read_text())["batch"]
    late = [history.Reader(demo.settings, "from first, after the batch", "first"),
            history.Reader(demo.settings, "from next, after the batch", "next")]  # fmt: skip
    attach(demo, late)
    everyone = readers + late[:1]
    read_all = lambda: all(len(reader.done_of(batch)) == 6 for reader in everyone)  # noqa: E731
    demo.wait_until("every reader to read the batch's 6 tasks", read_all, every=0.2)
    for reader in readers + late:
        reader.stop()
    run = json.loads((demo.settings.timelines / f"{demo.name}.json").read_text())
    workers = {worker: len(tasks) for worker, (tasks, _busy) in per_worker(done_records(run["events"])).items()}
    print("\n==> The same 6 tasks, seen both ways", flush=True)
    print(side_by_side(workers, [(reader.name, reader.done_of(batch)) for reader in readers + late]))
    print("\nA work queue gives each task to one worker and forgets it once acknowledged; a stream keeps every "
          "event for every reader, to read from any offset, as often as it likes.")  # fmt: skip


def attach(demo, readers):
    for reader in readers:
        reader.start()
    demo.wait_until("the stream's readers to attach", lambda: all(r.attached.is_set() for r in readers), every=0.1)


def side_by_side(workers, readers, total=6):
    """task_queue's workers beside lab.history's readers: who got how many of TOTAL tasks."""
    left = ["task_queue, a work queue: workers compete"] + [
        f"  {w:<12} {n} of {total} tasks" for w, n in workers.items()
    ]
    right = ["lab.history, a stream: each reader reads all"]
    for name, done in readers:
        offsets = f", offsets {min(done.values())}-{max(done.values())}" if done else ""
        right.append(f"  {name:<28} {len(done)} of {total}{offsets}")
    rows = max(len(left), len(right))
    left, right = left + [""] * (rows - len(left)), right + [""] * (rows - len(right))
    return "\n".join(f"{a:<44}  {b}".rstrip() for a, b in zip(left, right, strict=True))


DEMOS = {"crash": crash, "restart": restart, "node-failure": node_failure, "round-robin": round_robin,
         "fair-dispatch": fair_dispatch, "stream": stream}  # fmt: skip


def main(argv=None):
    name, args = parse(sys.argv[1:] if argv is None else argv)
    prog = f"demo-{name}.sh"
    try:
        with Demo(name) as demo:
            DEMOS[name](demo, args)
    except Ended as ended:
        return ended.status
    except (Stop, SettingsError) as stop:
        print(f"{prog}: {stop}", file=sys.stderr)
        return getattr(stop, "status", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
