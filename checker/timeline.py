"""The check's run as the lab saves a batch (producer/runs.py): records drawn from
what each copy printed (a line naming a task starts an attempt, one saying done ends it),
since a student's worker sends the lab no records; the faults marked on it."""

import os
import warnings
from pathlib import Path

import runs

SOURCE = "drawn from the copies' output (a line naming a task starts it, a line saying done ends it)"


def records(session):
    """The records of each attempt at a task the check sent, as a lab worker sends them:
    "started", then "done" when the copy said so (without it the lab draws it cut short)."""
    result, seen = [], set()
    tasks = list(session.sent)
    attempts = [(copy.name, attempt) for copy in session.copies.all for attempt in copy.attempts(tasks)]
    for worker, attempt in sorted(attempts, key=lambda item: item[1]["started"]):
        if attempt["task"] not in session.sent:
            continue  # not one of the check's (a producer's message): it has no number
        record = {
            "event": "started",
            "worker": worker,
            "task": attempt["task"],
            "message_id": session.sent[attempt["task"]],
            "batch": session.batch,
            "redelivered": attempt["task"] in seen,
            "started": attempt["started"],
        }
        result.append(record)
        if attempt["finished"] is not None:
            result.append({**record, "event": "done", "finished": attempt["finished"]})
        seen.add(attempt["task"])
    return result


def save(session, name):
    """Save the run as TIMELINES_DIR/NAME.json (and NAME.png if a task was done); the PNG's path or None."""
    runs.TIMELINES = Path(os.environ.get("TIMELINES_DIR") or "timelines")
    run = {
        "name": name,
        "batch": session.batch,
        "workers": session.size,
        "sent": len(session.sent),
        "events": records(session),
        "marks": session.marks,
        "source": SOURCE,
    }
    with warnings.catch_warnings():  # matplotlib's, about a crowded layout: the chart is still drawn
        warnings.simplefilter("ignore", UserWarning)
        return runs.TIMELINES / f"{name}.json", runs.save_run(name, run)
