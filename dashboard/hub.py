"""What the dashboard has seen, numbered, and everyone watching it.

Every message a browser gets has an id (the Server-Sent Events `id:`), so a
browser that reconnects with Last-Event-ID gets what it missed; one that
missed more than the history holds gets a fresh snapshot. The history is kept
as JSON text, capped by messages and by bytes: what a snapshot sends is what
the dashboard holds, and neither grows without bound.
"""

import asyncio
import itertools
import json
import time
from collections import deque

from batches import Batches
from pool_history import PoolHistory

# Events a second kept and forwarded from workers the broker has not seen attach (their
# events may all be forged), and from all workers: beyond them dropped and counted.
UNSEEN_EVENTS_PER_SECOND = 1_000
EVENTS_PER_SECOND = 5_000
# Bytes a second of lab.events messages read at all: reading is what a flood costs (a lab
# worker's message is a few hundred bytes); beyond, a message is dropped unread and counted.
BYTES_PER_SECOND = 2 << 20
HISTORY_MESSAGES = 20_000  # worker messages kept for snapshots (tasks with no work arrive as counts)
HISTORY_BYTES = 16 << 20
WATCHER_BACKLOG_BYTES = 8 << 20  # a slow browser lagging more than this is dropped (it reconnects)
KEEP_ALIVE_SECONDS = 15
# Workers the broker says are attached now, whose word a snapshot keeps after the history let it
# go (a forged flood read back can fill the history): a bound, though only the broker speaks there.
ATTACHED_KEPT = 1_000
GAPS_KEPT = 10


def compact(value):
    return json.dumps(value, separators=(",", ":"))


def sse(number, data):
    return f"id: {number}\ndata: {data}\n\n"


class Watcher:
    """One browser's backlog of stream text, bounded in bytes."""

    def __init__(self, limit):
        self.texts, self.size, self.limit = deque(), 0, limit
        self.ready = asyncio.Event()
        self.overflowed = False

    def put(self, text):
        if self.size + len(text) > self.limit:
            self.overflowed = True
        else:
            self.texts.append(text)
            self.size += len(text)
        self.ready.set()

    async def get(self, timeout):
        """The next text, "" after `timeout` seconds of nothing, None once overflowed."""
        if not self.texts and not self.overflowed:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return ""
        if self.overflowed:
            return None
        text = self.texts.popleft()
        self.size -= len(text)
        return text


class Hub:
    def __init__(self, history_messages=HISTORY_MESSAGES, history_bytes=HISTORY_BYTES,
                 backlog_bytes=WATCHER_BACKLOG_BYTES, clock=time.time, timelines=None):  # fmt: skip
        self.ids = itertools.count(1)
        self.latest = 0  # the last id given to any message
        self.history = deque()  # (id, the events of one message as JSON text, without the brackets)
        self.history_bytes = 0
        self.limits = (history_messages, history_bytes)
        self.backlog_bytes = backlog_bytes
        self.clock = clock
        self.latest_queues = None
        self.pool = PoolHistory()
        self.status = {"broker": None, "gaps": [], "dropped": 0, "out_of_time": 0, "flooded": 0}
        self.seen_by_broker = set()  # workers the broker said attached (amq.rabbitmq.event)
        self.attached = {}  # worker -> (id of its message, the broker's "attached" as JSON text), while attached
        self.batches = Batches(timelines, self.seen_by_broker)
        self.second, self.this_second = None, {"all": 0, "unseen": 0, "bytes": 0}
        self.current = None
        self.told_flooded = 0  # the flood's count is told once a second, not with every message
        self.lost_at = None
        self.watchers = set()

    def number(self):
        self.latest = next(self.ids)
        return self.latest

    def room_for(self, size):
        """Whether a lab.events message of `size` bytes is read, within this second's bytes."""
        self.new_second()
        if self.this_second["bytes"] + size > BYTES_PER_SECOND:
            self.status["flooded"] += 1
            return False
        self.this_second["bytes"] += size
        return True

    def new_second(self):
        second = int(self.clock())
        if second != self.second:
            self.second, self.this_second = second, {"all": 0, "unseen": 0, "bytes": 0}

    def admitted(self, events, catching_up=False):
        """The events within this second's bounds: a flood of events (forged ones, say) is cut
        to what a page can draw, and workers the broker never saw cannot crowd out the others.
        Catching up on the stream's backlog (feeds.py), the events of workers the broker saw
        are all kept: read at the stream's pace, a real batch comes faster than a second's
        bounds, and cut short it showed false figures."""
        self.new_second()
        # The broker's own "gone" follows any real leaving: a "leaving" said of a worker it saw is
        # left to it (anyone can say one, and the page greyed out a worker the broker still counted).
        events = [e for e in events if e["event"] != "leaving" or e.get("worker") not in self.seen_by_broker]
        kept = []
        for event in events:
            if event.get("broker"):
                if event["event"] == "attached":
                    self.seen_by_broker.add(event["worker"])
                kept.append(event)
                continue
            unseen = event.get("worker") not in self.seen_by_broker
            if catching_up and not unseen:
                kept.append(event)
                continue
            if self.this_second["all"] >= EVENTS_PER_SECOND or (
                unseen and self.this_second["unseen"] >= UNSEEN_EVENTS_PER_SECOND
            ):
                continue
            self.this_second["all"] += 1
            self.this_second["unseen"] += unseen
            kept.append(event)
        if len(kept) < len(events):
            self.status["flooded"] += len(events) - len(kept)
        return kept

    def add_events(self, events, catching_up=False):
        events = self.admitted(events, catching_up)
        text = compact(events)[1:-1]
        if not text:
            return
        self.batches.add(events)
        for event in events:
            if event["event"] == "scaled":
                self.pool.add_scaled(event, self.clock())
        number = self.number()
        self.keep_attached(number, events)
        self.history.append((number, text))
        self.history_bytes += len(text)
        most_messages, most_bytes = self.limits
        while len(self.history) > most_messages or self.history_bytes > most_bytes:
            self.history_bytes -= len(self.history.popleft()[1])
        self.tell(number, f'{{"type":"events","events":[{text}]}}')

    def keep_attached(self, number, events):
        """The broker's word on who is attached now, kept apart from the history: a snapshot
        must name the real workers whatever the history kept (the page ranks their lanes first)."""
        for event in events:
            if event.get("broker"):
                self.attached.pop(event["worker"], None)
                if event["event"] == "attached":
                    self.attached[event["worker"]] = (number, compact(event))
        while len(self.attached) > ATTACHED_KEPT:
            del self.attached[next(iter(self.attached))]

    def set_queues(self, figures):
        # Stamped as it goes out: the page sets its clock by it (a figure that took seconds
        # to gather, as on a cluster electing a leader, once set it seconds behind).
        now = self.clock()
        self.pool.add_reading(now, figures.get("task_queue"))
        self.latest_queues = compact({"type": "queues", **figures, "now": now, "over_time": self.pool.view(now)})
        self.tell(self.number(), self.latest_queues)

    def set_broker(self, host):
        """The node followed now, or None while none is. While none is, no events come (the page
        says since when); once one is again, the dashboard reads on in the stream from where it
        stopped (feeds.py), so the time without one is no gap: only mark_gap makes one."""
        if host is None and self.status["broker"] is not None:
            self.lost_at = self.clock()
            self.batches.gaps = [*self.batches.gaps, (self.lost_at, None)][-GAPS_KEPT:]
        elif host is not None and self.lost_at is not None:
            self.batches.gaps = [(gap["from"], gap["to"]) for gap in self.status["gaps"]]
            self.lost_at = None
        if host != self.status["broker"]:
            self.status["broker"] = host
            self.tell_status()

    def mark_gap(self, start, end):
        """Events the dashboard never heard, from `start` to `end` (the stream no longer held them)."""
        self.status["gaps"] = [*self.status["gaps"], {"from": start, "to": end}][-GAPS_KEPT:]
        self.batches.gaps = [(gap["from"], gap["to"]) for gap in self.status["gaps"]]
        if self.lost_at is not None:
            self.batches.gaps = [*self.batches.gaps, (self.lost_at, None)][-GAPS_KEPT:]
        self.tell_status()

    def tell_batches(self):
        """Each batch's figures that changed or go on changing (batches.py), to every page."""
        now = self.clock()
        for view in self.batches.views(now):
            self.tell(self.number(), compact(view))
        current = self.batches.current()
        if current != self.current:
            self.current = current
            self.tell(self.number(), compact({"type": "current", "batch": current}))
        if self.status["flooded"] != self.told_flooded:
            self.told_flooded = self.status["flooded"]
            self.tell_status()

    def drop(self, count, out_of_time=0):
        """Events refused at the door (door.py), counted for the page: malformed, or with
        times out of the window around when they arrived."""
        if count or out_of_time:
            self.status["dropped"] += count
            self.status["out_of_time"] += out_of_time
            self.tell_status()

    def tell_status(self):
        self.tell(self.number(), self.status_text())

    def status_text(self):
        return compact({"type": "status", **self.status, "lost_at": self.lost_at})

    def tell(self, number, data):
        text = sse(number, data)
        for watcher in list(self.watchers):
            watcher.put(text)
            if watcher.overflowed:
                self.watchers.discard(watcher)  # the browser reconnects and gets a snapshot

    def watched(self):
        return bool(self.watchers)

    def catch_up(self, last_id):
        """What a browser gets first: what it missed since last_id, or the whole snapshot."""
        first = self.history[0][0] if self.history else self.latest + 1
        # An id beyond the latest is from before the dashboard restarted: a snapshot then.
        if last_id is not None and first - 1 <= last_id <= self.latest:
            kind, kept = "events", [text for number, text in self.history if number > last_id]
        else:
            # The broker's word on the workers attached now first, where the history let it go.
            let_go = [text for number, text in self.attached.values() if number < first]
            kind, kept = "snapshot", let_go + [text for _number, text in self.history]
        # The status first: the page reads the events knowing when the dashboard heard none.
        text = sse(self.latest, self.status_text())
        text += sse(self.latest, f'{{"type":"{kind}","events":[{",".join(kept)}]}}')
        for view in self.batches.all_views(self.clock()):
            text += sse(self.latest, compact(view))
        text += sse(self.latest, compact({"type": "current", "batch": self.batches.current()}))
        if self.latest_queues:
            text += sse(self.latest, self.latest_queues)
        return text

    async def watch(self, last_id):
        """The text of the event stream for one browser, as it comes."""
        watcher = Watcher(self.backlog_bytes)
        self.watchers.add(watcher)
        try:
            yield self.catch_up(last_id)
            while True:
                text = await watcher.get(KEEP_ALIVE_SECONDS)
                if text is None:
                    return
                yield text or ": keep-alive\n\n"  # proxies and browsers close silent streams
        finally:
            self.watchers.discard(watcher)
            if not self.watchers:
                self.latest_queues = None  # not kept fresh while no page watches: none for the next
