"""The lab's settings, read from the environment (.env, passed on by compose.yaml) and
each checked once, in one place: the workers and the producer read them here, and
any image or host tool can (the host tools find the published ports and address).

A setting out of its range stops whoever reads it with the same one line, e.g.
    lab settings: MAX_DOTS_PER_TASK must be a whole number >= 1, got '0' (see .env)
and exit status 2, before anything connects."""

import math
import os
import sys
from dataclasses import dataclass

from lab.brokers import broker_hosts
from lab.schema import DEFAULT_MAX_DOTS_PER_TASK

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class SettingsError(ValueError):
    """A setting is missing or out of its range; the message is the one line to show."""


@dataclass(frozen=True)
class Settings:
    hosts: tuple[str, ...]  # the broker, or a cluster's nodes, as the images reach them
    port: int  # their AMQP port, inside the Compose network
    user: str
    password: str
    bind_address: str  # the host address the lab's ports are published on
    amqp_port: int  # the published ports, as host tools reach them
    management_port: int
    dashboard_port: int
    prefetch: int  # unacknowledged tasks a worker may hold; 0: no limit
    seconds_per_dot: float
    max_dots: int  # the most dots a task may ask for: send.sh refuses more, a worker rejects more
    stop_grace_seconds: float
    heartbeat_seconds: int | None  # None: the broker's (60 s)

    @property
    def host_address(self):
        """Where a host tool finds the published ports: any address of the host for 0.0.0.0."""
        return "127.0.0.1" if self.bind_address == "0.0.0.0" else self.bind_address


def is_loopback(address):
    return address in LOOPBACK or address.startswith("127.")


def read(env=os.environ):
    """The settings, or SettingsError naming the first one that is wrong."""
    settings = Settings(
        hosts=broker_hosts(env),
        port=_number(env, "RABBITMQ_PORT", "5672", int, (1, 65_535)),
        user=_required(env, "RABBITMQ_DEFAULT_USER"),
        password=_required(env, "RABBITMQ_DEFAULT_PASS"),
        bind_address=env.get("LAB_BIND_ADDRESS") or "127.0.0.1",
        amqp_port=_number(env, "AMQP_PORT", "5672", int, (1, 65_535)),
        management_port=_number(env, "MANAGEMENT_PORT", "15672", int, (1, 65_535)),
        dashboard_port=_number(env, "DASHBOARD_PORT", "8080", int, (1, 65_535)),
        prefetch=_number(env, "PREFETCH", "1", int, (0, 65_535)),
        seconds_per_dot=_number(env, "SECONDS_PER_DOT", "1", float, (0, math.inf)),
        max_dots=_number(env, "MAX_DOTS_PER_TASK", str(DEFAULT_MAX_DOTS_PER_TASK), int, (1, math.inf)),
        stop_grace_seconds=_number(env, "STOP_GRACE_SECONDS", "10", float, (0, math.inf)),
        heartbeat_seconds=_number(env, "HEARTBEAT_SECONDS", None, int, (1, math.inf)),
    )
    # The loopback rule (rabbitmq/start-broker.sh applies it to the broker).
    if not is_loopback(settings.bind_address) and "guest" in (settings.user, settings.password):
        raise SettingsError(
            f"LAB_BIND_ADDRESS={settings.bind_address} publishes the lab beyond this machine while the login "
            "is still guest; set RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS to your own (see .env)"
        )
    return settings


def load(env=os.environ):
    """read(), or the one line on standard error and exit status 2."""
    try:
        return read(env)
    except SettingsError as exc:
        print(f"lab settings: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _required(env, name):
    if not env.get(name):
        raise SettingsError(f"{name} is not set (see .env)")
    return env[name]


def _number(env, name, default, kind, bounds):
    minimum, maximum = bounds
    text = env.get(name) or default
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum or not math.isfinite(value):
        what = "a whole number" if kind is int else "a number"
        bounds = f">= {minimum}" if maximum == math.inf else f"from {minimum} to {maximum}"
        raise SettingsError(f"{name} must be {what} {bounds}, got {text!r} (see .env)")
    return value
