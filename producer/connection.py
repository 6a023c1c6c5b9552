"""How the producer reaches the broker: its hosts (one broker, or a cluster's nodes
from RABBITMQ_HOSTS), its login from the environment, and a connection to the
first of them that answers."""

import os
import random

import pika
from pika.exceptions import AMQPConnectionError

from workload import InputError


def broker_hosts(env=os.environ):
    """RABBITMQ_HOSTS, comma-separated (a cluster's nodes), else RABBITMQ_HOST, else the lab's broker."""
    hosts = [host.strip() for host in env.get("RABBITMQ_HOSTS", "").split(",") if host.strip()]
    return hosts or [env.get("RABBITMQ_HOST") or "rabbitmq"]


def blocking_connection(parameters):
    """A BlockingConnection to the first of these brokers that takes one. Given the
    list itself, pika gives up at the first name that does not resolve, which is
    what a dead cluster node's container is."""
    parameters = parameters if isinstance(parameters, (list, tuple)) else [parameters]
    for number, each in enumerate(parameters, start=1):
        try:
            return pika.BlockingConnection(each)
        except (AMQPConnectionError, OSError):
            if number == len(parameters):
                raise
    raise ValueError("no broker to connect to")


def connection_parameters(env=os.environ):
    """One set of parameters per broker host, in a random order: the producer's
    connections (blocking_connection, publisher.Publisher) try them in turn."""
    missing = [name for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS") if not env.get(name)]
    if missing:
        raise InputError(f"{' and '.join(missing)} not set (they come from .env)")
    hosts = broker_hosts(env)
    return [
        pika.ConnectionParameters(
            host=host,
            port=int(env.get("RABBITMQ_PORT", "5672")),
            credentials=pika.PlainCredentials(env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]),
            client_properties={"connection_name": "producer"},
        )
        for host in random.sample(hosts, len(hosts))
    ]
