"""The lab's settings as the host tools read them: the shell's environment over .env's
NAME=value lines, as docker compose resolves them for the lab, checked by lab/settings.py
(every image's reader). The one place labctl reads a setting."""

import os
from dataclasses import dataclass
from pathlib import Path

import pika

from lab import settings as lab_settings
from lab.settings import SettingsError  # noqa: F401 (the host tools' too)

ROOT = Path(__file__).resolve().parents[1]


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
    """The host's view of the lab's settings, each checked once by lab/settings.py (the same
    rules and one-line messages as every image), plus what only the host tools need."""
    values = lab_environment(env)
    lab = lab_settings.read(values)
    return Settings(
        amqp_host=lab.host_address,
        amqp_port=lab.amqp_port,
        management_port=lab.management_port,
        dashboard_port=lab.dashboard_port,
        user=lab.user,
        password=lab.password,
        prefetch=lab.prefetch,
        seconds_per_dot=lab.seconds_per_dot,
        project=values.get("COMPOSE_PROJECT_NAME") or "rabbitmq-lab",
        timelines=ROOT / (values.get("TIMELINES_DIR") or "timelines"),
        wait_seconds=_seconds(values.get("LAB_WAIT_SECONDS") or "180"),
    )


def _seconds(text):
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingsError(f"LAB_WAIT_SECONDS must be a number of seconds > 0, got '{text}'")
    return seconds
