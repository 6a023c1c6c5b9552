"""How the producer reaches the broker: its hosts (one broker, or a cluster's nodes
from RABBITMQ_HOSTS, lab.brokers) and its login from the environment."""

import os
import random

import pika

from lab.brokers import broker_hosts
from workload import InputError


def connection_parameters(env=os.environ):
    """One set of parameters per broker host, in a random order: the producer's
    connections (lab.brokers.open_first, publisher.Publisher) try them in turn."""
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
