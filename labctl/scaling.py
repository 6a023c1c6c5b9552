"""How many workers the queue asks for: KEDA's RabbitMQ scaler (mode QueueLength) and
HPA's scale-down stabilisation, as pure functions of what the autoscaler reads. No I/O.

    recommendation = ceil(messages / per_worker), within [minimum, maximum]
        messages = ready + unacknowledged (a busy worker's task counts: counting only
        ready messages would remove workers in the middle of their tasks)
        with minimum 0: 0 while messages <= activation (KEDA's activationValue)
    applied = the highest recommendation of the last down_after seconds
        (a rise is applied at once; a fall waits until the window has forgotten the
        higher ones: HPA's stabilizationWindowSeconds, and KEDA's cooldownPeriod for 0)
"""

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    minimum: int = 1
    maximum: int = 6
    per_worker: int = 4  # KEDA's `value`: the messages one worker is meant to have
    down_after: float = 30.0  # seconds
    activation: int = 0  # KEDA's `activationValue`: a pool of 0 wakes when messages exceed it

    def problem(self):
        """What is wrong with the rule, or None."""
        if self.minimum < 0:
            return f"--min must be 0 or more, got {self.minimum}"
        if self.maximum < max(self.minimum, 1):
            return f"--max must be at least 1 and at least --min ({self.minimum}), got {self.maximum}"
        if self.per_worker < 1:
            return f"--per-worker must be 1 or more, got {self.per_worker}"
        if not 0 <= self.down_after < math.inf:
            return f"--down-after must be 0 or more seconds, got {self.down_after}"
        if self.activation < 0:
            return f"--activation must be 0 or more, got {self.activation}"
        return None


@dataclass(frozen=True)
class Decision:
    ready: int
    unacked: int
    recommended: int  # what the queue asks for now
    before: int  # the pool as it was found
    workers: int  # the pool as it is to be
    why: str

    @property
    def messages(self):
        return self.ready + self.unacked


def recommend(messages, rule):
    """(workers the queue asks for now, why)."""
    if rule.minimum == 0 and messages <= rule.activation:
        return 0, f"{messages} messages, not above the activation {rule.activation}"
    wanted = math.ceil(messages / rule.per_worker)
    said = f"ceil({messages} / {rule.per_worker}) = {wanted}"
    if wanted > rule.maximum:
        return rule.maximum, f"{said}, at most --max {rule.maximum}"
    if wanted < max(rule.minimum, 1):
        return max(rule.minimum, 1), f"{said}, at least {max(rule.minimum, 1)}"
    return wanted, said


class Scaler:
    """The recommendations of the last `down_after` seconds, and the decision each poll."""

    def __init__(self, rule):
        self.rule = rule
        self.recent = deque()  # (when, recommendation), oldest first

    def decide(self, now, ready, unacked, workers):
        """The decision at `now` (seconds, any clock that only goes forward) on a reading
        of task_queue (ready, unacknowledged) and the pool of `workers` found running."""
        recommended, why = recommend(ready + unacked, self.rule)
        if not self.recent:  # the pool as found counts as asked for: a restarted autoscaler cuts nobody at once
            self.recent.append((now, min(max(workers, self.rule.minimum), self.rule.maximum)))
        self.recent.append((now, recommended))
        while self.recent[0][0] < now - self.rule.down_after:
            self.recent.popleft()
        highest = max(count for _when, count in self.recent)
        window = f"the last {self.rule.down_after:g} s"
        if highest > workers:
            why = f"up at once: {why}"
        elif highest == workers and recommended < workers:
            why = f"down held: {why}; {window} asked for up to {highest}"
        elif highest < workers and highest == 0:
            why = f"to 0: no messages above the activation for {window}"
        elif highest < workers:
            why = f"down: {why}; the highest of {window} is {highest}"
        else:
            why = f"steady: {why}"
        return Decision(ready, unacked, recommended, workers, highest, why)
