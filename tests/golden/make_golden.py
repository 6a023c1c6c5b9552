"""Golden files: for each run of bench/example_runs.py, what the terminal and the PNG
draw (the timeline's segments) and the figures they print, as lab/figures.py computes
them. tests/js/ feeds the same records to the dashboard's model.js and expects the same.

Run `python3 tests/golden/make_golden.py` after changing lab/figures.py or example_runs.py;
tests/unit/test_golden.py fails while the files on disk are not what this writes.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[1] / "bench"), str(HERE.parent / "support")]

from example_runs import BATCH, MARKS, RUNS  # noqa: E402
from lab import figures  # noqa: E402


def golden(name, events, marks):
    """The run's records and faults, and what lab/figures.py makes of them."""
    bars = [
        {
            "worker": segment["worker"],
            "message_id": segment["message_id"],
            "started": segment["started"],
            "finished": segment["finished"],
            "state": "cut" if segment.get("cut") else "done",
        }
        for segment in figures.segments(events, marks)
    ]
    bars.sort(key=lambda bar: (bar["started"], figures.natural_key(bar["worker"]), bar["message_id"]))
    return {
        # As send.sh --wait saves it (producer/runs.py): with its figures and segments.
        "run": figures.with_figures({"name": name, "batch": BATCH, "events": events, "marks": marks}, marks),
        "segments": bars,
        "figures": figures.figures(events),
    }


def files():
    """{file name: its text}."""
    return {
        f"{name}.json": json.dumps(golden(name, events, MARKS.get(name, [])), indent=1) + "\n"
        for name, events in RUNS.items()
    }


def main():
    for name, text in files().items():
        (HERE / name).write_text(text)
        print(f"wrote tests/golden/{name}")


if __name__ == "__main__":
    main()
