"""The autoscaler's loop (labctl/autoscale.py) on a fake broker reading and a fake
docker compose: what it applies, what it says, what it tells the dashboard, and
what it does when the broker stops answering."""

import json
import subprocess
import threading

import pytest

from lab import schema
from labctl import autoscale
from labctl.autoscale import parse
from labctl.running_lab import Pool, Refused, Unreachable, lab_settings
from labctl.scaling import Rule


class FakeBroker:
    """Readings in turn: (ready, unacked), or an error message for a broker that does not answer;
    the workers' events heard at each poll in turn."""

    def __init__(self, readings, events=()):
        self.readings, self.pending, self.told = list(readings), list(events), []

    def read(self):
        reading = self.readings.pop(0)
        if isinstance(reading, str):
            raise Unreachable(reading)
        return reading

    def events(self):
        return self.pending.pop(0) if self.pending else []

    def tell(self, event):
        self.told.append(event)


class FakePool:
    """Compose's consumer replicas: up adds the next numbers, down removes the highest."""

    def __init__(self, workers, fail=None):
        self.names, self.fail, self.scaled = {f"consumer-{n}" for n in range(1, workers + 1)}, fail, []

    def workers(self):
        return set(self.names)

    def scale(self, count):
        self.scaled.append(count)
        if self.fail:
            return self.fail
        numbers = sorted(int(name.rsplit("-", 1)[1]) for name in self.names)
        while len(numbers) > count:
            numbers.pop()
        while len(numbers) < count:
            numbers.append(max(numbers, default=0) + 1)
        self.names = {f"consumer-{n}" for n in numbers}
        return None


class Polls:
    """The stop event of the loop: set once the broker's readings are all read; each wait a second."""

    def __init__(self, broker):
        self.broker, self.now = broker, 0.0

    def is_set(self):
        return not self.broker.readings

    def wait(self, seconds):
        self.now += seconds


def run(rule, readings, workers=1, events=(), fail=None):
    broker, pool, lines = FakeBroker(readings, events), FakePool(workers, fail), []
    polls = Polls(broker)
    autoscale.run(rule, 1, broker, pool, polls, out=lines.append, clock=lambda: polls.now)
    return broker, pool, lines


def test_a_burst_grows_the_pool_at_once_and_it_shrinks_after_the_window():
    rule = Rule(minimum=1, maximum=6, per_worker=4, down_after=3)
    broker, pool, lines = run(rule, [(0, 0), (48, 0), (20, 6), (0, 8), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)])
    assert pool.scaled == [6, 2, 1]
    assert [line.split("workers ")[1].split("  ")[0] for line in lines] == [
        "1 -> 1", "1 -> 6", "6 -> 6", "6 -> 6", "6 -> 6", "6 -> 6", "6 -> 2", "2 -> 1", "1 -> 1",
    ]  # fmt: skip
    assert "messages 48 (48 ready / 0 unacked)  recommended 6  workers 1 -> 6  up at once" in lines[1]
    assert "down held" in lines[3]


def test_each_poll_is_told_to_the_dashboard_as_an_event_of_the_schema():
    broker, _pool, _lines = run(Rule(), [(8, 1), (0, 0)])
    assert [(e["ready"], e["unacked"], e["recommended"], e["before"], e["workers"]) for e in broker.told] == [
        (8, 1, 3, 1, 3),
        (0, 0, 1, 3, 3),
    ]
    assert [schema.problem(event, event=True) for event in broker.told] == [None, None]


def test_the_broker_down_is_said_once_and_the_pool_kept_until_it_answers():
    rule = Rule(down_after=0)
    readings = ["ConnectionRefusedError", "ConnectionRefusedError", (0, 0), (0, 0)]
    _broker, pool, lines = run(rule, readings, workers=3)
    assert lines[0].endswith("broker not answering (ConnectionRefusedError); the pool stays at 3")
    assert lines[1].endswith("broker answering again; deciding from its counts")
    assert len(lines) == 4 and pool.scaled == [1]  # nothing decided while it did not answer


def test_a_scale_down_that_handed_a_task_back_says_so():
    cut = {"event": "cut", "worker": "consumer-3", "task": "Task 7..", "reason": "stopped before it was done"}
    elsewhere = {**cut, "worker": "consumer-1"}  # a worker the autoscaler did not stop
    heard = [[], [cut, elsewhere]]  # at the first poll, and the second (the scale-down)
    _broker, pool, lines = run(Rule(down_after=0), [(0, 0), (0, 0)], workers=3, events=heard)
    assert pool.workers() == {"consumer-1"}
    handed = [line for line in lines if "handed" in line]
    assert len(handed) == 1
    assert "the scale-down handed 'Task 7..' back to the queue (consumer-3: stopped before it was done;" in handed[0]


def test_a_failed_compose_call_is_said_and_the_loop_goes_on():
    _broker, pool, lines = run(Rule(), [(48, 0), (48, 0)], fail="Cannot connect to the Docker daemon")
    assert pool.scaled == [6, 6] and pool.workers() == {"consumer-1"}
    assert lines[1].endswith("docker compose up failed (Cannot connect to the Docker daemon); the pool stays as it was")


class CtrlCDuringCompose(FakePool):
    """Ctrl+C while docker compose runs: the stop is asked for, and the call it also reached fails."""

    def __init__(self, workers, stop, during):
        super().__init__(workers)
        self.stop, self.during = stop, during

    def workers(self):
        if self.during == "ps":
            self.stop.set()
            raise Refused("docker compose ps failed: exit status 130")
        return super().workers()

    def scale(self, count):
        self.stop.set()
        return "exit status 130"


@pytest.mark.parametrize("during", ["ps", "up"])
def test_ctrl_c_that_ends_a_compose_call_is_a_stop_not_a_failure(during):
    stop, lines = threading.Event(), []
    pool = CtrlCDuringCompose(1, stop, during)
    autoscale.run(Rule(), 1, FakeBroker([(48, 0)]), pool, stop, out=lines.append)  # no Refused raised
    assert not [line for line in lines if "failed" in line], lines
    assert len(lines) == (0 if during == "ps" else 1)  # the poll's line, when it got that far


def test_a_compose_call_that_fails_unasked_still_stops_the_autoscaler_with_its_reason():
    class Failing(FakePool):
        def workers(self):
            raise Refused("docker compose ps failed: Cannot connect to the Docker daemon")

    with pytest.raises(Refused, match="Cannot connect"):
        autoscale.run(Rule(), 1, FakeBroker([(0, 0)]), Failing(1), threading.Event(), out=print)


def test_events_off_the_schema_or_not_json_are_dropped():
    good = {"event": "leaving", "worker": "consumer-1", "at": 1.0}
    assert schema.events_of(json.dumps([good, {"event": "cut"}, "x"]).encode())[0] == [good]
    assert schema.events_of(b"not json")[0] == []
    assert schema.events_of(json.dumps({"event": "leaving"}).encode())[0] == []


def compose_config(services):
    def fake_run(command, **_kwargs):
        assert command == ["docker", "compose", "config", "--format", "json"]
        return subprocess.CompletedProcess(command, 0, json.dumps({"name": "lab", "services": services}), "")

    return fake_run


LOGIN = {"RABBITMQ_DEFAULT_USER": "student", "RABBITMQ_DEFAULT_PASS": "secret"}


def ports(amqp, management, host="127.0.0.1"):
    return [
        {"target": 5672, "published": str(amqp), "host_ip": host},
        {"target": 15672, "published": str(management), "host_ip": host},
    ]


def test_settings_are_what_compose_resolves():
    services = {
        "rabbitmq": {"environment": LOGIN, "ports": ports(5999, 15999)},
        "rabbitmq-2": {"environment": LOGIN},  # a cluster node publishes no host port
        "consumer": {"environment": {}},
    }
    settings = lab_settings(compose_config(services))
    assert (settings.project, settings.brokers, settings.user, settings.password) == (
        "lab", (("127.0.0.1", 5999, 15999),), "student", "secret",
    )  # fmt: skip


def test_a_broker_published_on_every_address_is_reached_on_loopback():
    services = {"rabbitmq": {"environment": LOGIN, "ports": ports(5672, 15672, host="0.0.0.0")}}
    assert lab_settings(compose_config(services)).brokers == (("127.0.0.1", 5672, 15672),)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--max", "0"], "autoscale.sh: --max must be at least 1 and at least --min (1), got 0 (see --help)"),
        (["--min", "x"], "autoscale.sh: argument --min: invalid int value: 'x' (see --help)"),
        (["--every", "0"], "autoscale.sh: --every must be 0.1 to 30 seconds, got 0 (see --help)"),
        (["--down-after", "nan"], "autoscale.sh: --down-after must be 0 or more seconds, got nan (see --help)"),
        (
            ["--down-after", "4"],
            "autoscale.sh: --down-after must be at least 5 s (task_queue's unacknowledged count lags that much), "
            "got 4 (see --help)",
        ),
        (["--fast"], "autoscale.sh: unrecognized arguments: --fast (see --help)"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == said + "\n"


def test_help_says_usage_takes_and_changes(capsys):
    with pytest.raises(SystemExit) as exited:
        parse(["--help"])
    assert exited.value.code == 0
    said = capsys.readouterr().out
    assert all(f"\n{word}:" in said for word in ("Usage", "Takes", "Changes"))


def test_the_script_refuses_a_bad_option_with_one_line_and_status_2():
    script = autoscale.__file__.replace("labctl/autoscale.py", "scripts/autoscale.sh")
    result = subprocess.run([script, "--per-worker", "0"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1:] == ["autoscale.sh: --per-worker must be 1 or more, got 0 (see --help)"]


def test_a_ctrl_c_does_not_reach_a_scaling_under_way():
    """Pool runs docker compose in a process group of its own: a Ctrl+C cut `up --scale` short
    and left containers created but not started (a new-user trial)."""
    calls = []
    pool = Pool(
        "rabbitmq-lab", run=lambda args, **kwargs: calls.append(kwargs) or subprocess.CompletedProcess(args, 0, "", "")
    )
    pool.scale(4)
    assert calls[0]["process_group"] == 0
