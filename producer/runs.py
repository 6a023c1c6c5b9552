"""Saved runs: a batch's records kept as timelines/NAME.json with its chart
NAME.png, and the fault marks a demo noted beside them in NAME.marks."""

import json
import os
from pathlib import Path

import chart
from lab.figures import done_records, segments, with_figures
from lab.marks import read_marks

TIMELINES = Path("timelines")


def shown(path):
    """A saved file's path as the caller of send.sh can use it (they may stand elsewhere)."""
    return Path(os.environ.get("TIMELINES_SHOWN_AS", TIMELINES)) / path.relative_to(TIMELINES)


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"report.py: cannot read the run {path}: {exc}") from exc


def save_run(name, run):
    """Keep a run, with the faults marked on it and its figures and segments (what every
    place shows of it, lab/figures.py), as timelines/NAME.json and, if any task was done,
    timelines/NAME.png. Returns the PNG's path, or None."""
    marks = marks_of({**run, "name": name})
    run = with_figures({**run, "marks": marks}, marks)
    TIMELINES.mkdir(parents=True, exist_ok=True)
    records, png = TIMELINES / f"{name}.json", TIMELINES / f"{name}.png"
    # Both written, then put in place: a producer stopped half way (a demo's Ctrl+C) left a
    # new NAME.json beside the PNG of an earlier run of that name.
    writing = {records: TIMELINES / f".{name}.json.part"}
    writing[records].write_text(json.dumps(run, indent=1))
    if done_records(run["events"]):
        writing[png] = TIMELINES / f".{name}.part.png"  # .png: the format matplotlib writes
        chart.save_png(writing[png], [(name, segments(run["events"], run["marks"]), run["marks"])])
    else:
        png.unlink(missing_ok=True)  # an earlier run's chart is not this one's
    for path, part in writing.items():
        part.replace(path)
    return png if png in writing else None


def marks_of(run):
    """The faults marked on a run: saved with it, else those in timelines/NAME.marks
    that fall within the run (the file may be left over from an earlier run)."""
    if "marks" in run:
        return run["marks"]
    if not run.get("name") or not run["events"]:
        return []
    start = min(event["started"] for event in run["events"])
    end = max(event.get("finished", event["started"]) for event in run["events"])
    return [mark for mark in read_marks(TIMELINES / f"{run['name']}.marks") if start <= mark["at"] <= end]
