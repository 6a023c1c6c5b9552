"""The checks, each a function of the session that returns its Verdict: what it
saw, and the fix when it fails. They send tasks of their own and watch what the
copies print ("[x] Received ...", "[x] Done") and what the broker shows."""

import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

from .session import POLL_SECONDS, wait_until

ACK_FIX = (
    "acknowledge manually after the work: ch.basic_ack(delivery_tag=method.delivery_tag) as the callback's "
    "last line, with auto_ack off (Node: channel.ack(msg) after the work, noAck: false)"
)
PREFETCH_FIX = (
    "call ch.basic_qos(prefetch_count=1) before basic_consume (Node: channel.prefetch(1)): "
    "a busy worker then takes no new task until it acknowledges its own"
)
DECLARE_FIX = (
    "declare the queue as the lab does: channel.queue_declare(queue='task_queue', durable=True, "
    "arguments={'x-queue-type': 'quorum'}) (Node: assertQueue('task_queue', {durable: true, "
    "arguments: {'x-queue-type': 'quorum'}}))"
)
PERSISTENT_FIX = (
    "publish with properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent) "
    "(Node: sendToQueue(queue, body, {persistent: true}))"
)
RECONNECT_FIX = (
    "connect again when the connection is lost (pika: catch pika.exceptions.AMQPConnectionError, wait, "
    "connect again; amqplib: on the connection's 'close' event)"
)
CONSUME_FIX = "consume task_queue and keep consuming: basic_consume(queue='task_queue', ...), then start_consuming()"
SIGTERM_FIX = "handle SIGTERM: stop consuming, finish or hand back the task in hand, close the connection"


@dataclass
class Verdict:
    number: str
    title: str
    status: str  # PASS, FAIL, WARN or SKIP
    seen: str
    fix: str = ""

    def line(self):
        fix = f" Fix: {self.fix}" if self.fix and self.status in ("FAIL", "WARN") else ""
        return f"{self.status:<4}  {self.number}. {self.title}: {self.seen}{fix}"


def takes_and_finishes(session):
    title = "takes and finishes tasks"
    tasks = session.send("Check 1 task", [1] * (2 * session.size))

    def all_done():
        return all(session.copies.done_by(task) for task in tasks)

    wait_until(all_done, 15 + len(tasks))
    ready, unacked = session.held_until_empty(5)
    if ready:
        return Verdict("1", title, "FAIL", f"{ready} of {len(tasks)} tasks still wait in task_queue", CONSUME_FIX)
    if unacked:
        return Verdict("1", title, "FAIL", f"{unacked} tasks taken but never acknowledged", ACK_FIX)
    took = {copy.name: sum(bool(copy.received(task)) for task in tasks) for copy in session.copies.running()}
    shares = ", ".join(f"{name} took {count}" for name, count in took.items())
    seen = f"{len(tasks)} tasks sent, all left task_queue, none unacknowledged; {shares}"
    if not any(took.values()):
        return Verdict("1", title, "PASS", f"{seen} (no copy printed '[x] Received ...': who took what is unknown)")
    idle = [name for name, count in took.items() if not count]
    if idle:
        return Verdict("1", title, "FAIL", seen, f"{', '.join(idle)} took none: {PREFETCH_FIX}")
    return Verdict("1", title, "PASS", seen)


def acknowledges_after_work(session):
    title = "acknowledges after the work"
    (task,) = session.send("Check 2 task", [4])
    if not wait_until(lambda: session.copies.holder(task), 15):
        return Verdict(
            "2", title, "SKIP", f"no copy printed '[x] Received {task}' within 15 s: cannot tell whom to kill"
        )
    victim = session.copies.holder(task)
    time.sleep(1)  # into the work
    killed = victim.signal(signal.SIGKILL)
    victim.process.wait()
    session.mark(f"killed {victim.name}", killed)
    wait_until(lambda: session.broker.counts()[1] < session.size, 5)  # the broker saw it go
    session.attach()  # a new copy in its place
    replacement = session.current[-1]

    def outcome():
        if any(copy is not victim for copy in session.copies.done_by(task)):
            return "redone"
        if time.time() - killed > 3 and not any(c is not victim and c.received(task) for c in session.copies.all):
            return "lost" if session.task_queue_empty() else None
        return None

    wait_until(outcome, 25, interval=1)
    result = outcome()
    if result == "redone":
        (other,) = session.copies.done_by(task)[:1]
        return Verdict(
            "2", title, "PASS",
            f"{victim.name} was killed 1 s into '{task}'; the task went back to task_queue and {other.name} did it "
            f"({replacement.name} started in {victim.name}'s place)",
        )  # fmt: skip
    if result == "lost":
        session.mark(f"task {session.sent[task].rsplit('.', 1)[1]} lost", killed + 0.1)
        how = "auto_ack=True (ack_required false)" if session.auto_ack() else "it was acknowledged on receipt"
        return Verdict(
            "2", title, "FAIL",
            f"LOST '{task}': {victim.name} was killed 1 s into it and no copy got it again, task_queue is empty: {how}",
            ACK_FIX,
        )  # fmt: skip
    return Verdict(
        "2", title, "FAIL", f"'{task}' was not done again within 25 s after {victim.name} was killed", ACK_FIX
    )


HELD_SECONDS = 2  # a quick task that waits this long was held behind a long one


def held_behind(attempts, sent_at):
    """The longest wait of a task held behind another on one copy while another copy had
    nothing left to do, as the copies' own output shows: (copy, task, seconds), or None
    if no task waited HELD_SECONDS. `attempts`: {copy name: its attempts at the batch, in
    order}; a copy with none was idle from `sent_at` on. This sees what sampling the broker
    misses when it answers slowly (a loaded machine)."""
    idle_since = {
        name: max((a["finished"] for a in mine), default=sent_at)
        for name, mine in attempts.items()
        if all(a["finished"] is not None for a in mine)
    }
    waits = [
        (name, later["task"], later["started"] - since)
        for name, mine in attempts.items()
        for later in mine[1:]
        for other, since in idle_since.items()
        if other != name
    ]
    return max((wait for wait in waits if wait[2] >= HELD_SECONDS), key=lambda wait: wait[2], default=None)


def fair_dispatch(session):
    title = "fair dispatch"
    if session.auto_ack():
        return Verdict("3", title, "SKIP", "with auto_ack the broker hands out tasks without limit (prefetch does not "
                       "apply), so it cannot show who hoards: fix check 2, then run again")  # fmt: skip
    prefetch = {consumer["channel_pid"]: consumer["prefetch_count"] for consumer in session.consumers}
    limits = sorted(set(prefetch.values()))
    # At prefetch 1 the broker itself holds each copy to one unacknowledged task: sampling it would
    # show nothing the limit does not (and each sample starts an Erlang VM in the broker's container).
    # Any other limit is sampled while the tasks run, to catch a copy holding several.
    sampling = limits != [1]
    sent_at = time.time()
    tasks = session.send("Check 3 task", [4] + [0] * (2 * session.size + 1))
    most, hoard = 0, None

    def sample():  # True once the copies hold none of the tasks and none is ready
        nonlocal most, hoard
        held = session.broker.unacknowledged(set(prefetch))
        top = max(held.values(), default=0)
        most = max(most, top)
        if top > 1 and min(held.values()) == 0 and hoard is None:
            hoard = (top, sorted(held.values()))
        return not any(held.values()) and session.broker.counts()[0] == 0

    def over():
        if all(session.copies.done_by(task) for task in tasks):
            return True
        if sampling:
            return sample()
        if any(copy.received(task) for copy in session.copies.all for task in tasks):
            return False  # their output says when they are done
        return session.task_queue_empty()

    wait_until(over, 25, interval=0 if sampling else POLL_SECONDS)
    shown = ", ".join("none (0)" if limit == 0 else str(limit) for limit in limits)
    seen = f"prefetch {shown}; a 4-dot task and {len(tasks) - 1} quick ones"
    if sampling:
        seen += f": at most {most} unacknowledged per copy" if most else ": no unacknowledged task sampled in time"
    if hoard:
        return Verdict("3", title, "FAIL", f"{seen}; one copy held {hoard[0]} while another held none", PREFETCH_FIX)
    attempts = {copy.name: [a for a in copy.attempts() if a["task"] in tasks] for copy in session.current}
    held = held_behind(attempts, sent_at)
    if 0 in limits:
        why = "with no prefetch limit a busy copy takes tasks it cannot start"
        if held:
            why = f"{held[0]} held '{held[1]}' {held[2]:.1f} s behind its long task while another held none"
        return Verdict("3", title, "FAIL", f"{seen}; {why}", PREFETCH_FIX)
    # With a limit, a task held behind another means an early acknowledgement: check 2's to judge.
    return Verdict("3", title, "PASS", seen if held else f"{seen}; no task waited behind another")


def durable(session, refused=None, producer=None):
    """The queue the copies consume is durable; `refused` is the broker's refusal of the
    copies' declaration, `producer` what the producer check saw (a Verdict) if it ran."""
    title = "durable queue" + (" and persistent messages" if producer else "")
    if refused:
        return Verdict("4", title, "FAIL", f"the broker refused your worker's declaration of task_queue "
                       f"(the lab's is a durable quorum queue): {refused}", DECLARE_FIX)  # fmt: skip
    queues = session.broker.queues()
    row = queues.get("task_queue", {})
    kind = "durable" if row.get("durable") else "NOT durable"
    seen = f"task_queue, which the copies consume, is {kind} ({row.get('type')})"
    if not row.get("durable"):
        return Verdict("4", title, "FAIL", seen, DECLARE_FIX)
    if producer and producer.status != "PASS":
        return Verdict("4", title, producer.status, f"{seen}; {producer.seen}", producer.fix)
    return Verdict("4", title, "PASS", f"{seen}{'; ' + producer.seen if producer else ''}")


def producer_persistent(broker, command, cwd, env):
    """Run the student's producer once (task_queue empty, no consumer): its message's delivery_mode."""
    try:
        result = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return Verdict("4", "", "FAIL", f"your producer did not run: {exc}", "")
    message = broker.peek()
    if message is None:
        output = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["(no output)"]
        return Verdict("4", "", "FAIL", f"your producer (exit status {result.returncode}) put no message in "
                       f"task_queue: {output[0]}", "publish to task_queue on the default exchange ('')")  # fmt: skip
    properties, text = message
    mode = properties.delivery_mode
    if mode == 2:
        return Verdict("4", "", "PASS", f"your producer's '{text}' is persistent (delivery_mode 2)")
    return Verdict(
        "4", "", "FAIL", f"your producer's '{text}' has delivery_mode {mode}: not persistent", PERSISTENT_FIX
    )


def stops_on_sigterm(session):
    title = "stops cleanly on SIGTERM"
    (task,) = session.send("Check 5 task", [3])
    if not wait_until(lambda: session.copies.holder(task), 15):
        return Verdict("5b", title, "SKIP", f"no copy printed '[x] Received {task}' within 15 s")
    copy = session.copies.holder(task)
    time.sleep(1)
    sent = copy.signal(signal.SIGTERM)
    session.mark(f"SIGTERM to {copy.name}", sent)
    stopped = wait_until(lambda: not copy.alive(), 10)
    if not stopped:
        copy.end(0)
    took = time.time() - sent
    wait_until(lambda: session.broker.counts()[1] < session.size, 5)  # the broker saw it go
    session.attach()
    done = wait_until(lambda: session.copies.done_by(task), 15)
    by = ", ".join(c.name for c in session.copies.done_by(task))
    if not stopped:
        return Verdict("5b", title, "WARN", f"{copy.name} still ran 10 s after SIGTERM (killed)", SIGTERM_FIX)
    if not done:
        return Verdict("5b", title, "WARN", f"{copy.name} ended {took:.1f} s after SIGTERM and '{task}' was lost",
                       f"{SIGTERM_FIX}; {ACK_FIX}")  # fmt: skip
    return Verdict("5b", title, "PASS", f"{copy.name} ended {took:.1f} s after SIGTERM; '{task}' was done by {by}")


def back_after_restart(session):
    title = "comes back after a broker restart"
    restarted = time.time()
    if not session.broker.restart(90):
        return Verdict("5a", title, "WARN", "the broker did not take connections within 90 s of a restart")
    session.mark("broker restarted", restarted)

    def ended():  # a copy that ended cannot come back: no need to wait for it
        return [copy for copy in session.current if not copy.alive()]

    back = wait_until(lambda: ended() or session.broker.counts()[1] == session.size, 20, interval=1)
    gone = ended()
    if back and not gone:
        return Verdict("5a", title, "PASS", f"all {session.size} copies consume task_queue again")
    consuming = session.broker.counts()[1]
    seen = f"{consuming} of {session.size} copies consume task_queue"
    if gone:
        copy = gone[0]
        ended_how = f"exit status {copy.process.returncode}"
        seen += f" after the broker came back; {copy.name} ended ({ended_how}): {copy.tail(1)}"
    else:
        seen += " 20 s after the broker came back"
    return Verdict("5a", title, "WARN", seen, RECONNECT_FIX)
