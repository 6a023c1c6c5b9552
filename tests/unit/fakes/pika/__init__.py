"""A fake pika for the scripts' sandbox (scripts_sandbox.py): a broker that answers
every call, and whose queue holds the lines of the file $FAKE_EVENTS (each line one
message's body, e.g. a JSON list of lab events), as a test writes them."""

import os
import time
from types import SimpleNamespace

from . import exceptions  # noqa: F401 (pika.exceptions, as the real pika has it)


class ConnectionParameters:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class PlainCredentials:
    def __init__(self, *args):
        self.args = args


class BasicProperties(SimpleNamespace):
    pass


class BlockingConnection:
    def __init__(self, _parameters):
        self.read = 0  # lines of $FAKE_EVENTS delivered so far

    def channel(self):
        return self

    def exchange_declare(self, *_args, **_kwargs):
        pass

    def queue_declare(self, *_args, **_kwargs):
        return SimpleNamespace(method=SimpleNamespace(queue="fake-queue"))

    def queue_bind(self, *_args, **_kwargs):
        pass

    def basic_get(self, _queue, auto_ack=False):
        path = os.environ.get("FAKE_EVENTS", "")
        lines = open(path).read().splitlines() if path and os.path.exists(path) else []
        if self.read >= len(lines):
            return None, None, None
        self.read += 1
        return SimpleNamespace(delivery_tag=self.read), BasicProperties(), lines[self.read - 1].encode()

    def sleep(self, seconds):
        time.sleep(seconds)

    def close(self):
        pass
