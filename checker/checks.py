"""The checks, each a function of the session that returns its Verdict: what it
saw, and the fix when it fails. They send tasks of their own and decide from
what the broker shows (which copy's channels hold how many tasks unacknowledged,
task_queue's ready count, the consumers' acknowledgement mode and prefetch);
a line of a copy's output that names a task, in any wording, is extra evidence.
Each check requires its own tasks done (acknowledged) before it passes."""

import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

from . import diagnose
from .session import POLL_SECONDS, NotAttached, wait_until

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
HANG_FIX = (
    "finish each task and acknowledge it, then return from the callback: a worker that stops acknowledging "
    "(a callback that never returns, a lock, an endless wait) holds its task for ever"
)
CONSUME_FIX = (
    "consume task_queue and keep consuming: basic_consume(queue='task_queue', on_message_callback=...), then "
    "start_consuming() (a worker that polls with basic_get is not a consumer the broker dispatches to)"
)
PRINT_FIX = 'print the task you receive, as the tutorial does: print(f" [x] Received {body.decode()}")'
SIGTERM_FIX = "handle SIGTERM: stop consuming, finish or hand back the task in hand, close the connection"
HELD_SECONDS = 2  # a task that waits this long in a copy's hands while another idles was held behind
LONGER_DOTS = 40  # check 2's task when a copy finished the first before the kill
QUIET_SECONDS = 3  # task_queue empty, no copy holding the task, this long: not coming back
WAIT_SECONDS = 25  # for a check's tasks to be done (with the tutorial's second a dot, about 5 s)
HOLDER_SECONDS = 15  # for a copy to take the one task in flight
AUTO_ACK_GRACE_SECONDS = 3  # check 1's one-dot tasks, handed out with auto_ack: a copy that ends within this


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


TITLES = {
    "1": "takes and finishes tasks",
    "2": "acknowledges after the work",
    "3": "fair dispatch",
    "4": "durable queue",
    "5b": "a task in hand survives SIGTERM",
    "5a": "comes back after a broker restart",
}


def ended(session):
    """The first copy that should consume and has ended, or None."""
    return next((copy for copy in session.current if not copy.alive()), None)


def crashed(number, session, copy):
    seen, fix = diagnose.crash(copy, session.broker.port)
    return Verdict(number, TITLES[number], "FAIL", seen, fix)


def not_done(number, session, reading, tasks, waited):
    """FAIL: the check's tasks not all done within `waited` s: who holds them, what waits."""
    parts = []
    if reading.ready:
        parts.append(f"{reading.ready} still wait in task_queue")
    for name, count in reading.holding().items():
        copy = next(copy for copy in session.copies.all if copy.name == name)
        named = [task for task in tasks if copy.named(task)]
        last = f" (it last named '{named[-1]}'; its last line: {copy.tail(1)})" if named else ""
        parts.append(f"{name} holds {count} unacknowledged{last}")
    seen = f"{len(tasks)} tasks sent, not all done within {waited} s: {'; '.join(parts)}"
    fix = HANG_FIX if reading.holding() else CONSUME_FIX
    return Verdict(number, TITLES[number], "FAIL", seen, fix)


def run_tasks(session, label, dots, seconds):
    """Send the tasks and sample the broker until they are all done, a copy ends, or
    `seconds` pass: (tasks, samples taken meanwhile, the last sample)."""
    start = len(session.samples)
    tasks = session.send(label, dots)
    last = session.sample_until(lambda reading: reading.empty() or ended(session), seconds)
    return tasks, session.samples[start:], last


def takes_and_finishes(session):
    tasks, samples, last = run_tasks(session, "Check 1 task", [1] * (2 * session.size), WAIT_SECONDS)
    if copy := ended(session):
        return crashed("1", session, copy)
    if not last.empty():
        return not_done("1", session, last, tasks, WAIT_SECONDS)
    if session.auto_ack():  # the broker counted each task done as it handed it out: watch the work end
        wait_until(lambda: ended(session), AUTO_ACK_GRACE_SECONDS)
        if copy := ended(session):
            return crashed("1", session, copy)
        return Verdict("1", TITLES["1"], "SKIP", f"{len(tasks)} tasks sent, all taken; with auto_ack the broker counts "
                       "a task done when it hands it out, so whether the copies finish theirs cannot be seen",
                       ACK_FIX)  # fmt: skip
    took = {copy.name: sum(bool(copy.named(task)) for task in tasks) for copy in session.current}
    seen_holding = {name for reading in samples for name in reading.holding()}
    shares = ", ".join(
        f"{name} took {count}"
        if count
        else f"{name} {'was seen holding some' if name in seen_holding else 'took none'}"
        for name, count in took.items()
    )
    seen = f"{len(tasks)} tasks sent, all done (acknowledged); {shares}"
    idle = [name for name, count in took.items() if not count and name not in seen_holding]
    if idle and len(idle) < len(took):
        return Verdict("1", TITLES["1"], "FAIL", seen, f"{', '.join(idle)} took none: {PREFETCH_FIX}")
    if idle:
        seen += (
            " (no copy named a task in its output and no sample caught one holding a task: who took what is unknown)"
        )
    return Verdict("1", TITLES["1"], "PASS", seen)


def holder_of(session, task):
    """The copy holding `task`, the only task in flight, once it has started it, and how that
    is known: ("the broker", its channel holds the task unacknowledged and its output named it,
    or it names no task at all) or ("its output", it named the task and a sample taken after
    that showed no copy holding it). (None, the last sample) when neither, within
    HOLDER_SECONDS. A copy that holds the task but has not named it yet may not have started
    it (still busy with an earlier one): it is waited for."""
    deadline = time.monotonic() + HOLDER_SECONDS
    while True:
        reading = session.sample()
        first = session.copies.first_named(task)
        for name in reading.holding():
            copy = next(copy for copy in session.current if copy.name == name)
            if (first and first[1] is copy) or not names_tasks(session, copy):
                return copy, "the broker"
        if first and first[0] < reading.at and not reading.holding():
            return first[1], "its output"
        if ended(session) or time.monotonic() >= deadline:
            return None, reading
        time.sleep(POLL_SECONDS)


def names_tasks(session, copy):
    """The copy has printed a line naming one of the check's tasks."""
    return any(copy.named(task) for task in session.sent)


def replace(session, copy):
    """Wait for the broker to see the ended copy's consumers go; start another in its place."""
    theirs = sum(owner is copy for owner in session.owner.values())
    wait_until(lambda: session.broker.counts()[1] <= len(session.consumers) - theirs, 5)
    session.attach()


def after_ending(session, victim, task, since, seconds):
    """What became of the only task in flight once `victim` was ended, watched at once (a copy
    in its place is started first only when no other runs): ("redone", copy name) when another
    copy held it (the broker) or named it after `since`, the kill (its output), and it was then
    acknowledged; ("lost", None) when task_queue stayed empty, no copy holding it, for
    QUIET_SECONDS; ("held", copy name) when one still held it at the end."""
    others = [copy for copy in session.current if copy is not victim and copy.alive()]
    if not others:
        replace(session, victim)
    outcome = after_kill(session, victim, task, since, seconds)
    if others:
        replace(session, victim)
    return outcome


def redone_by(session, victim, task, since):
    """The first copy but `victim` that named `task` after `since`, or None."""
    named = [(moment, copy.name) for copy in session.copies.all if copy is not victim
             for moment in copy.named(task) if moment > since]  # fmt: skip
    return min(named)[1] if named else None


def after_kill(session, victim, task, since, seconds):
    other, empty_since = None, None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reading = session.sample()
        holders = [name for name in reading.holding() if name != victim.name]
        if holders:
            other, empty_since = holders[0], None
        elif other is None:
            other = redone_by(session, victim, task, since)
        if not holders and reading.empty():
            if other:
                return "redone", other
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= QUIET_SECONDS:
                return "lost", None
        time.sleep(POLL_SECONDS)
    return ("held", other) if other else ("lost", None)


def acknowledges_after_work(session):
    """Kill the copy holding a task, mid-task: the task must come back and be done by another.
    A lost task whose copy the broker did not show holding it at the kill may have been
    finished already: the check is tried again with a longer task, then decides."""
    for label, dots in (("Check 2 task", 4), ("Check 2 longer task", LONGER_DOTS)):
        verdict, victim, how, task = kill_mid_task(session, label, dots)
        if verdict:
            return verdict
    if how == "the broker":
        return Verdict("2", TITLES["2"], "SKIP", f"the broker showed {victim.name} holding '{task}', yet it was "
                       "acknowledged before the kill, twice: a worker this quick cannot be killed mid-task",
                       "give each dot some work (the tutorial sleeps a second per dot)")  # fmt: skip
    why = ("auto_ack=True (ack_required false)" if session.auto_ack()
           else "it was acknowledged on receipt, before the work")  # fmt: skip
    return Verdict("2", TITLES["2"], "FAIL", f"LOST '{task}': {victim.name} named it, but the broker showed its "
                   f"channel holding nothing after that; killed, no copy got the task again and task_queue is empty: "
                   f"{why}", ACK_FIX)  # fmt: skip


def kill_mid_task(session, label, dots):
    """One try of check 2 with a task of `dots`: (its Verdict, or None when the task was not
    done again: lost, or finished before the kill; the copy killed; how its holding was known;
    the task)."""
    (task,) = session.send(label, [dots])
    victim, how = holder_of(session, task)
    if victim is None:
        if copy := ended(session):
            return crashed("2", session, copy), None, None, task
        if how.ready:
            return not_done("2", session, how, [task], HOLDER_SECONDS), None, None, task
        return Verdict("2", TITLES["2"], "SKIP", f"'{task}' left task_queue but no copy was seen holding it (no "
                       "channel of theirs held it unacknowledged and no copy's output named it): cannot tell whom "
                       "to kill", PRINT_FIX), None, None, task  # fmt: skip
    killed = victim.signal(signal.SIGKILL)
    victim.process.wait()
    session.mark(f"killed {victim.name}", killed)
    waited = max(WAIT_SECONDS, 1.5 * dots)  # the task again, from the start
    outcome, by = after_ending(session, victim, task, killed, waited)
    verdict = None
    if outcome == "redone":
        session.long_dots = dots
        verdict = Verdict("2", TITLES["2"], "PASS", f"{victim.name} was killed holding '{task}' (known from {how}); "
                          f"the task went back to task_queue and {by} did it (acknowledged)")  # fmt: skip
    elif outcome == "held":
        verdict = Verdict("2", TITLES["2"], "FAIL", f"{victim.name} was killed holding '{task}'; {by} took it again "
                          f"but did not finish it within {waited:.0f} s", HANG_FIX)  # fmt: skip
    else:
        session.mark(f"task {session.sent[task].rsplit('.', 1)[1]} not done again", killed + 0.1)
    return verdict, victim, how, task


def held_behind(samples, first_named, tasks):
    """Evidence that a task was held behind another on one copy while another copy had nothing:
    a sample with task_queue empty where one copy held two or more and another none, or a task
    a copy first named HELD_SECONDS or more after a sample where task_queue was empty, another
    copy held none, and no copy had named the task yet (it was in the first copy's hands, not
    started). `first_named`: {task: (moment, copy name)}. One line, or None."""
    for reading in samples:
        over = {name: count for name, count in reading.holding().items() if count > 1}
        if reading.ready == 0 and over and reading.idle():
            name, count = max(over.items(), key=lambda item: item[1])
            return f"the broker showed {name} holding {count} tasks while {reading.idle()[0]} held none"
    waits = []
    for task in tasks:
        if task not in first_named:
            continue
        moment, name = first_named[task]
        for reading in samples:
            idle = [other for other in reading.idle() if other != name]
            if reading.ready == 0 and idle and reading.at <= moment - HELD_SECONDS:
                waits.append((moment - reading.at, task, name, idle[0]))
                break
    if not waits:
        return None
    wait, task, name, idle = max(waits)
    return f"'{task}' waited at least {wait:.1f} s in {name}'s hands before it named it, while {idle} held none"


def fair_dispatch(session):
    limits = session.prefetch()
    shown = sorted({limit for mine in limits.values() for limit in mine})
    seen = f"prefetch {', '.join('none (0)' if limit == 0 else str(limit) for limit in shown)}"
    if session.auto_ack():
        seen = "auto_ack (prefetch does not apply)"
    dots = getattr(session, "long_dots", 4)
    tasks, samples, last = run_tasks(session, "Check 3 task", [dots] + [0] * (2 * session.size + 1), WAIT_SECONDS)
    seen += f"; a {dots}-dot task and {len(tasks) - 1} quick ones"
    if copy := ended(session):
        return crashed("3", session, copy)
    first_named = {}
    for task in tasks:
        if found := session.copies.first_named(task):
            first_named[task] = (found[0], found[1].name)
    return dispatch_verdict(session, seen, (samples, last, first_named), no_limit=0 in shown or session.auto_ack())


def dispatch_verdict(session, seen, evidence, no_limit):
    """Check 3's verdict from what the broker showed and the copies named: FAIL on any evidence
    of a task held behind another while a copy idled, or with no prefetch limit; SKIP when the
    evidence is too thin to tell; PASS only with the tasks done and samples taken while a copy
    held one."""
    samples, last, first_named = evidence  # the broker's samples, the last one, {task: (moment, copy) first named}
    title, tasks = TITLES["3"], [task for task in session.sent if task.startswith("Check 3 task")]
    fix = PREFETCH_FIX if not session.auto_ack() else f"{ACK_FIX}; then {PREFETCH_FIX}"
    if held := held_behind(samples, first_named, tasks):
        return Verdict("3", title, "FAIL", f"{seen}; {held}", fix)
    if not last.empty():
        return not_done("3", session, last, tasks, WAIT_SECONDS)
    if no_limit:
        return Verdict("3", title, "FAIL", f"{seen}; with no prefetch limit a busy copy takes tasks it cannot start "
                       "(not caught this time)", fix)  # fmt: skip
    in_flight = [reading for reading in samples if reading.ready == 0 and reading.holding()]
    unnamed = [task for task in tasks if task not in first_named]
    if not in_flight:
        return Verdict("3", title, "SKIP", f"{seen}; the broker was never sampled while a task was in a copy's "
                       "hands (the tasks were over too soon, or the machine is loaded)",
                       "run the check again")  # fmt: skip
    if unnamed:
        return Verdict("3", title, "SKIP", f"{seen}; {len(unnamed)} of the tasks were never named in the copies' "
                       "output: a task waiting in a busy copy's hands cannot be told from one being worked on",
                       PRINT_FIX)  # fmt: skip
    return Verdict("3", title, "PASS", f"{seen}; all done, none held behind another while a copy idled "
                   f"({len(in_flight)} broker samples while tasks were in hand)")  # fmt: skip


def durable(session, refused=None, producer=None):
    """The queue the copies consume is durable; `refused` is the broker's refusal of the
    copies' declaration, `producer` what the producer check saw (a Verdict) if it ran."""
    title = TITLES["4"] + (" and persistent messages" if producer else "")
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


def producer_persistent(broker, command, copies, env):
    """Run the student's producer once (task_queue empty, no consumer), where the copies run
    (here or in the sandbox): its message's delivery_mode."""
    try:
        argv, _container = copies.wrap(shlex.split(command), "producer")
        result = subprocess.run(argv, cwd=copies.cwd, env=env, capture_output=True, text=True, timeout=60,
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


def survives_sigterm(session):
    """SIGTERM to the copy holding a task: it must end within 10 s, and the task be done,
    by it before it ends or, handed back, by another copy."""
    title = TITLES["5b"]
    (task,) = session.send("Check 5 task", [3])
    copy, how = holder_of(session, task)
    if copy is None:
        return Verdict("5b", title, "SKIP", f"no copy was seen holding '{task}' within {HOLDER_SECONDS} s")
    sent = copy.signal(signal.SIGTERM)
    session.mark(f"SIGTERM to {copy.name}", sent)
    stopped = wait_until(lambda: not copy.alive(), 10)
    if not stopped:
        copy.end(0)
    took = time.time() - sent
    outcome, by = after_ending(session, copy, task, sent, WAIT_SECONDS)
    if not stopped:
        return Verdict("5b", title, "WARN", f"{copy.name} still ran 10 s after SIGTERM (killed)", SIGTERM_FIX)
    if outcome == "redone":
        return Verdict("5b", title, "PASS", f"{copy.name} ended {took:.1f} s after SIGTERM; '{task}' went back to "
                       f"task_queue and {by} did it")  # fmt: skip
    if outcome == "held":
        return Verdict("5b", title, "WARN", f"'{task}' went back, but {by} did not finish it in {WAIT_SECONDS} s",
                       HANG_FIX)  # fmt: skip
    return Verdict("5b", title, "PASS" if how == "the broker" else "WARN",
                   f"{copy.name} ended {took:.1f} s after SIGTERM; '{task}' was acknowledged before it ended "
                   "(finished, or acknowledged on receipt: check 2 tells)", SIGTERM_FIX)  # fmt: skip


def back_after_restart(session):
    title = TITLES["5a"]
    restarted = time.time()
    if not session.broker.restart(90):
        return Verdict("5a", title, "WARN", "the broker did not take connections within 90 s of a restart")
    session.mark("broker restarted", restarted)
    expected = len(session.consumers)

    def gone():  # a copy that ended cannot come back: no need to wait for it
        return [copy for copy in session.current if not copy.alive()]

    back = wait_until(lambda: gone() or session.broker.counts()[1] >= expected, 20, interval=1)
    if back and not gone():
        return Verdict("5a", title, "PASS", f"all {session.size} copies consume task_queue again")
    consuming = session.broker.counts()[1]
    seen = f"{consuming} of {expected} consumers of the copies are back on task_queue"
    if gone():
        copy = gone()[0]
        seen += (
            f" after the broker came back; {copy.name} ended (exit status {copy.process.returncode}): {copy.tail(1)}"
        )
    else:
        seen += " 20 s after the broker came back"
    return Verdict("5a", title, "WARN", seen, RECONNECT_FIX)


def runs_on(session, number, check):
    """check(session), or a FAIL when a copy started in place of an ended one did not consume."""
    try:
        return check(session)
    except NotAttached as exc:
        return Verdict(number, "a new copy", "FAIL", str(exc))
