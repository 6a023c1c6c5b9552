"""task_queue's depth and the pool of workers over the last minutes, for the page's chart.

Two series the dashboard already has, kept bounded whatever arrives:
- each reading of task_queue it takes while a page watches (feeds.py, once a second):
  ready, unacknowledged, and its consumers, the broker's own count of the workers;
- each `scaled` event (scripts/autoscale.sh) that changed the pool, past the door (door.py:
  the schema) and the hub's bounds on events a second: the autoscaler's word, with its why.
The page draws them as they are over a window ending now: the pool's story outlasts a batch
(a scale-down comes after the queue has been quiet a while, when the batch is over).
"""

from collections import deque

WINDOW_SECONDS = 300
READINGS_KEPT = 300  # one a second while a page watches: the window's worth
SCALINGS_KEPT = 50
# No reading for longer than this (no page watched, the dashboard lost its node): the lines
# break there, nothing is drawn across what was not read.
BREAK_SECONDS = 5


class PoolHistory:
    def __init__(self):
        self.readings = deque(maxlen=READINGS_KEPT)  # [at, ready, unacked, consumers]; None: not known
        self.scalings = deque(maxlen=SCALINGS_KEPT)

    def add_reading(self, now, task_queue):
        """A reading of task_queue (feeds.py's figures for it: None while it is not declared)."""
        if self.readings and now - self.readings[-1][0] > BREAK_SECONDS:
            self.readings.append([now, None, None, None])
        figures = task_queue or {}
        self.readings.append([now, figures.get("ready"), figures.get("unacked"), figures.get("consumers")])

    def add_scaled(self, event, now):
        """A `scaled` event from lab.events; kept if it changed the pool, within the window."""
        if event["workers"] != event["before"] and event["at"] >= now - WINDOW_SECONDS:
            self.scalings.append({name: event[name] for name in ("at", "before", "workers", "why")})

    def view(self, now):
        """What the page draws: the window, the readings in it, the scalings in it by time."""
        since = now - WINDOW_SECONDS
        return {
            "window": WINDOW_SECONDS,
            "readings": [reading for reading in self.readings if reading[0] >= since],
            "scalings": sorted((s for s in self.scalings if s["at"] >= since), key=lambda s: s["at"]),
        }
