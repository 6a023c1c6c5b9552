"""The lab's settings as the host tools read them: the shell's environment over .env's
NAME=value lines, as docker compose resolves them for the lab. The one place labctl
reads a setting; lab/settings.py (every image's validated reader) can take over by
reading lab_environment()."""

import os
from dataclasses import dataclass
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A setting the host tools cannot use; the message is the one line to show."""


@dataclass(frozen=True)
class Settings:
    amqp_host: str  # where this machine reaches the lab's published ports
    amqp_port: int
    management_port: int
    dashboard_port: int
    user: str
    password: str
    prefetch: int  # the workers' limit of unacknowledged tasks in .env; 0: none
    seconds_per_dot: float
    project: str  # docker compose's project name, which names the containers
    timelines: Path  # where runs and their fault marks are saved
    wait_seconds: float  # the longest a program waits for the lab (LAB_WAIT_SECONDS: a test may shorten it)

    def connection_parameters(self, name, **options):
        """pika's parameters for the lab's broker, the connection named NAME in the management UI."""
        credentials = pika.PlainCredentials(self.user, self.password)
        return pika.ConnectionParameters(self.amqp_host, self.amqp_port, credentials=credentials,
                                         client_properties={"connection_name": name}, **options)  # fmt: skip


def lab_environment(env=os.environ, dotenv=ROOT / ".env"):
    """.env's settings, each overridden by a non-empty one of the same name in `env`."""
    values = {}
    for line in dotenv.read_text().splitlines():
        name, equals, value = line.partition("=")
        if equals and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values | {name: value for name, value in env.items() if value}


def read(env=os.environ):
    values = lab_environment(env)
    bind_address = values.get("LAB_BIND_ADDRESS") or "127.0.0.1"
    return Settings(
        amqp_host="127.0.0.1" if bind_address == "0.0.0.0" else bind_address,
        amqp_port=_number(values, "AMQP_PORT", "5672", int),
        management_port=_number(values, "MANAGEMENT_PORT", "15672", int),
        dashboard_port=_number(values, "DASHBOARD_PORT", "8080", int),
        user=values.get("RABBITMQ_DEFAULT_USER", "guest"),
        password=values.get("RABBITMQ_DEFAULT_PASS", "guest"),
        prefetch=_number(values, "PREFETCH", "1", int),
        seconds_per_dot=_number(values, "SECONDS_PER_DOT", "1", float),
        project=values.get("COMPOSE_PROJECT_NAME") or "rabbitmq-lab",
        timelines=ROOT / (values.get("TIMELINES_DIR") or "timelines"),
        wait_seconds=_number(values, "LAB_WAIT_SECONDS", "180", float),
    )


def _number(values, name, default, kind):
    text = values.get(name) or default
    try:
        number = kind(text)
    except ValueError:
        number = -1
    if number < 0:
        raise SettingsError(f"{name} must be a number >= 0, got '{text}' (see .env)")
    return number
