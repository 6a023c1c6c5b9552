"""lab/settings.py: every image's and host tool's settings, each checked once, and one
line for a setting out of its range."""

import subprocess
import sys
from pathlib import Path

import pytest

from lab import settings

ROOT = Path(__file__).resolve().parents[2]
LOGIN = {"RABBITMQ_DEFAULT_USER": "lab", "RABBITMQ_DEFAULT_PASS": "secret"}


def test_defaults():
    read = settings.read(LOGIN)
    assert (read.hosts, read.port, read.user, read.password) == (("rabbitmq",), 5672, "lab", "secret")
    assert (read.prefetch, read.seconds_per_dot, read.max_dots, read.stop_grace_seconds) == (1, 1.0, 3600, 10.0)
    assert read.heartbeat_seconds is None and read.bind_address == read.host_address == "127.0.0.1"
    assert (read.amqp_port, read.management_port, read.dashboard_port) == (5672, 15672, 8080)


def test_the_knobs_are_read():
    knobs = {"PREFETCH": "0", "SECONDS_PER_DOT": "0.05", "STOP_GRACE_SECONDS": "4", "MAX_DOTS_PER_TASK": "10"}
    read = settings.read({**LOGIN, **knobs, "HEARTBEAT_SECONDS": "5", "RABBITMQ_HOSTS": "a, b,c,"})
    assert (read.prefetch, read.seconds_per_dot, read.stop_grace_seconds) == (0, 0.05, 4.0)
    assert (read.max_dots, read.heartbeat_seconds, read.hosts) == (10, 5, ("a", "b", "c"))


@pytest.mark.parametrize(
    "name, value",
    [
        ("PREFETCH", "-1"),
        ("PREFETCH", "1.5"),
        ("PREFETCH", "many"),
        ("PREFETCH", "65536"),
        ("SECONDS_PER_DOT", "-0.1"),
        ("SECONDS_PER_DOT", "nan"),
        ("SECONDS_PER_DOT", "inf"),
        ("MAX_DOTS_PER_TASK", "0"),
        ("STOP_GRACE_SECONDS", "-1"),
        ("HEARTBEAT_SECONDS", "0"),
        ("RABBITMQ_PORT", "0"),
        ("RABBITMQ_PORT", "70000"),
        ("AMQP_PORT", "x"),
        ("DASHBOARD_PORT", "-80"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_the_setting(name, value):
    with pytest.raises(settings.SettingsError, match=f"^{name} must be .*, got '{value}' \\(see .env\\)$"):
        settings.read({**LOGIN, name: value})


@pytest.mark.parametrize("missing", ["RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"])
def test_the_login_is_required(missing):
    with pytest.raises(settings.SettingsError, match=f"^{missing} is not set"):
        settings.read({key: value for key, value in LOGIN.items() if key != missing})


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "localhost", "::1"])
def test_guest_is_fine_on_loopback(address):
    assert settings.read({"RABBITMQ_DEFAULT_USER": "guest", "RABBITMQ_DEFAULT_PASS": "guest",
                          "LAB_BIND_ADDRESS": address}).user == "guest"  # fmt: skip


@pytest.mark.parametrize("login", [("guest", "guest"), ("lab", "guest"), ("guest", "secret")])
def test_guest_beyond_loopback_is_refused(login):
    env = {"RABBITMQ_DEFAULT_USER": login[0], "RABBITMQ_DEFAULT_PASS": login[1], "LAB_BIND_ADDRESS": "0.0.0.0"}
    with pytest.raises(settings.SettingsError, match="^LAB_BIND_ADDRESS=0.0.0.0 publishes the lab beyond"):
        settings.read(env)
    beyond = settings.read({**env, **LOGIN})
    assert (beyond.bind_address, beyond.host_address) == ("0.0.0.0", "127.0.0.1")


# Each program as its image runs it, MAX_DOTS_PER_TASK=0 given: the same line, status 2, nothing connected.
PROGRAMS = [("consumer", ["worker.py"]), ("producer", ["new_task.py", "Hello World!"])]


@pytest.mark.parametrize("folder, argv", PROGRAMS)
def test_a_setting_out_of_range_stops_every_program_with_the_same_line(folder, argv):
    env = {**LOGIN, "MAX_DOTS_PER_TASK": "0", "RABBITMQ_HOST": "nowhere.invalid", "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, *argv], cwd=ROOT / folder, env=env, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert (ran.returncode, ran.stdout) == (2, "")
    assert ran.stderr == "lab settings: MAX_DOTS_PER_TASK must be a whole number >= 1, got '0' (see .env)\n"
