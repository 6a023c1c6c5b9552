"""How a client of the lab reaches a broker: the hosts (one broker, or a cluster's
nodes), a connection to the first that answers, and pika's errors in words."""

import socket
import struct

import pika
from pika.exceptions import AMQPConnectionError


def broker_hosts(env):
    """RABBITMQ_HOSTS, comma-separated (a cluster's nodes), else RABBITMQ_HOST, else the lab's broker."""
    hosts = tuple(host.strip() for host in env.get("RABBITMQ_HOSTS", "").split(",") if host.strip())
    return hosts or (env.get("RABBITMQ_HOST") or "rabbitmq",)


def open_first(parameters, refuse=lambda _error: False, connected=lambda _parameters: None):
    """A BlockingConnection to the first of these brokers that takes one (then
    `connected(its parameters)`). Given the list itself, pika gives up at the first
    name that does not resolve, which is what a dead cluster node's container is.
    An error `refuse` says yes to (a bad login) ends the search at once."""
    parameters = parameters if isinstance(parameters, (list, tuple)) else [parameters]
    for number, each in enumerate(parameters, start=1):
        try:
            connection = pika.BlockingConnection(each)
        except (AMQPConnectionError, OSError) as exc:
            if number == len(parameters) or refuse(exc):
                raise
            continue
        connected(each)
        return connection
    raise ValueError("no broker to connect to")


def reset(connection):
    """End a connection at once with a TCP reset (SO_LINGER 0): the broker's system drops
    what the broker has not read yet. For a connection the broker blocked (a memory or
    disk alarm): it reads nothing from it until the alarm clears, so an AMQP close would
    wait for an answer that does not come, and a plain close would leave the messages
    written before the block to arrive when it clears. A pika SelectConnection or
    BlockingConnection (pika 1.4 has no public way to do this)."""
    impl = getattr(connection, "_impl", connection)
    sock = impl._transport._sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def causes(exc):
    """The error and the errors it wraps: pika nests the cause of a failed
    connect in exception args and in an `exception` attribute."""
    while isinstance(exc, BaseException):
        yield exc
        exc = getattr(exc, "exception", None) or (exc.args[0] if exc.args else None)


def short_error(exc):
    """The innermost cause, e.g. "ConnectionRefusedError: [Errno 111] Connection refused"."""
    *_, exc = causes(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
