"""What the dashboard has seen, numbered, and everyone watching it.

Every message a browser gets has an id (the Server-Sent Events `id:`), so a
browser that reconnects with Last-Event-ID gets what it missed; one that
missed more than the history holds gets a fresh snapshot.
"""

import asyncio
import itertools
import json
from collections import deque

HISTORY_MESSAGES = 20_000  # worker messages kept for snapshots (tasks with no work arrive as counts)
WATCHER_BACKLOG = 1_000  # messages a slow browser may lag behind before it is dropped (it reconnects)


class Hub:
    def __init__(self):
        self.ids = itertools.count(1)
        self.history = deque(maxlen=HISTORY_MESSAGES)  # (id, events)
        self.latest_queues = None
        self.watchers = set()

    def add_events(self, events):
        number = next(self.ids)
        self.history.append((number, events))
        self.tell(number, {"type": "events", "events": events})

    def set_queues(self, figures):
        self.latest_queues = figures
        self.tell(next(self.ids), {"type": "queues", **figures})

    def tell(self, number, message):
        text = sse(number, message)
        for watcher in list(self.watchers):
            try:
                watcher.put_nowait(text)
            except asyncio.QueueFull:
                self.watchers.discard(watcher)
                watcher.put_nowait(None)  # the browser reconnects and gets a snapshot

    def catch_up(self, last_id):
        """What a browser gets first: what it missed since last_id, or the whole snapshot."""
        first, latest = (self.history[0][0], self.history[-1][0]) if self.history else (None, None)
        # An id beyond the latest is from before the dashboard restarted: a snapshot then.
        if last_id is not None and first is not None and first - 1 <= last_id <= latest:
            missed = [events for number, events in self.history if number > last_id]
            number = self.history[-1][0]
            kind = "events"
        else:
            missed = [events for _number, events in self.history]
            number = self.history[-1][0] if self.history else 0
            kind = "snapshot"
        message = {"type": kind, "events": [event for events in missed for event in events]}
        text = sse(number, message)
        if self.latest_queues:
            text += sse(number, {"type": "queues", **self.latest_queues})
        return text

    async def watch(self, last_id):
        """The text of the event stream for one browser, as it comes."""
        watcher = asyncio.Queue(maxsize=WATCHER_BACKLOG)
        self.watchers.add(watcher)
        try:
            yield self.catch_up(last_id)
            while True:
                try:
                    text = await asyncio.wait_for(watcher.get(), timeout=15)
                except TimeoutError:
                    text = ": keep-alive\n\n"  # proxies and browsers close silent streams
                if text is None:
                    return
                yield text
        finally:
            self.watchers.discard(watcher)


def sse(number, message):
    return f"id: {number}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n"
