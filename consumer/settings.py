"""The worker's settings, read from the environment (compose.yaml passes them from .env)."""

import math
import os
import re
import socket
from dataclasses import dataclass

import dns.exception
import dns.resolver

from lab.brokers import broker_hosts
from lab.schema import DEFAULT_MAX_DOTS_PER_TASK


class ConfigError(ValueError):
    """A setting in the environment is missing or invalid."""


@dataclass(frozen=True)
class Config:
    hosts: tuple[str, ...]
    port: int
    user: str
    password: str
    prefetch: int
    seconds_per_dot: float
    max_dots: int
    stop_grace_seconds: float
    heartbeat_seconds: int | None
    worker_name: str

    @classmethod
    def from_env(cls, env=os.environ):
        return cls(
            hosts=broker_hosts(env),
            port=_number(env, "RABBITMQ_PORT", "5672", int, minimum=1),
            user=_required(env, "RABBITMQ_DEFAULT_USER"),
            password=_required(env, "RABBITMQ_DEFAULT_PASS"),
            prefetch=_number(env, "PREFETCH", "1", int, minimum=0),
            seconds_per_dot=_number(env, "SECONDS_PER_DOT", "1", float, minimum=0),
            max_dots=_number(env, "MAX_DOTS_PER_TASK", str(DEFAULT_MAX_DOTS_PER_TASK), int, minimum=1),
            stop_grace_seconds=_number(env, "STOP_GRACE_SECONDS", "10", float, minimum=0),
            # Unset: the broker's (60 s). The work runs off the connection's thread, so
            # a task longer than this does not stop heartbeats.
            heartbeat_seconds=_number(env, "HEARTBEAT_SECONDS", None, int, minimum=1),
            worker_name=env.get("WORKER_NAME") or default_worker_name(),
        )


def _required(env, name):
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is not set (it comes from .env)")
    return value


def _number(env, name, default, kind, minimum):
    text = env.get(name) or default
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} >= {minimum}, got {text!r}")
    return value


def default_worker_name():
    """The replica's Compose name, e.g. "consumer-2", else the hostname.

    Docker's DNS server answers a reverse lookup of a container's address with
    the container's name, "<project>-consumer-2.<network>." (/etc/hosts, which
    the system resolver reads first, only knows the container ID).
    """
    hostname = socket.gethostname()
    try:
        full_name = str(dns.resolver.resolve_address(socket.gethostbyname(hostname), lifetime=2)[0])
    except (OSError, dns.exception.DNSException):
        return hostname
    return replica_name(full_name) or hostname


def replica_name(full_name):
    """ "rabbitmq-lab-consumer-2.rabbitmq-lab_default." -> "consumer-2" """
    match = re.search(r"[^-.]+-\d+$", full_name.split(".")[0])
    return match.group(0) if match else None
