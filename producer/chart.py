"""The timeline chart: each run's workers as rows of bars, one bar per task,
drawn with matplotlib and saved as a PNG."""

from lab.colours import STATE_COLOURS
from lab.figures import makespan, per_worker, sequence_number, span

DONE_COLOR, CUT_COLOR, FAULT_COLOR = STATE_COLOURS["done"], STATE_COLOURS["cut"], "crimson"
# Past this many bars a chart has no room for their numbers, and drawing 100,000 of them
# took minutes: the bars alone, a collection per worker and state.
MAX_LABELLED_BARS = 300
# A task with no work is drawn this share of the time axis wide: seen, not nothing.
THINNEST_BAR = 1 / 150


def label_color(face):
    """Black or white, whichever contrasts more with the colour `face` (WCAG relative luminance)."""
    from matplotlib.colors import to_rgb  # noqa: PLC0415 - see timeline_figure

    red, green, blue = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(face))
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.179 else "white"


def timeline_figure(runs):
    """Each (title, segments, marks) run as a timeline chart, one above the other, on one time scale."""
    import matplotlib  # noqa: PLC0415 - imported only when a chart is drawn: it is slow to load

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    rows = sum(len(per_worker(records)) for _title, records, _marks in runs)
    figure, axes = plt.subplots(len(runs), 1, figsize=(11, 1.4 + 0.5 * rows + 0.6 * len(runs)), squeeze=False)
    longest = max(makespan(records) for _title, records, _marks in runs)
    legend = [
        Patch(facecolor=DONE_COLOR, edgecolor="white", label="done"),
        Patch(facecolor=DONE_COLOR, edgecolor="white", hatch="//", label="redelivered (hatched)"),
        Patch(facecolor=CUT_COLOR, edgecolor="white", hatch="xx", label="cut short"),
    ]
    labels = []  # (axis, text, left, length) of each bar's number
    for axis, (title, records, marks) in zip(axes[:, 0], runs, strict=True):
        start, _end = span(records)
        # Wide enough for the marks too: a fault after the last task done (a task lost) still shows.
        right = max([longest] + [mark["at"] - start for mark in marks]) * 1.02
        workers = per_worker(records)
        labelled = sum(len(tasks) for tasks, _busy in workers.values()) <= MAX_LABELLED_BARS
        for row, (tasks, _busy) in enumerate(workers.values()):
            bars = {}  # (colour, hatch) -> [(left, length)]: one collection each, not one per task
            for record in tasks:
                left = record["started"] - start
                length = max(record["finished"] - record["started"], right * THINNEST_BAR)
                color = CUT_COLOR if record.get("cut") else DONE_COLOR  # by state, as on the dashboard
                hatch = "xx" if record.get("cut") else "//" if record["redelivered"] else None
                bars.setdefault((color, hatch), []).append((left, length))
                if labelled:
                    label = str(sequence_number(record))
                    text = axis.text(left + length / 2, row, label, ha="center", va="center",
                                     color=label_color(color), fontsize=8)  # fmt: skip
                    labels.append((axis, text, left, length))
            for (color, hatch), ranges in bars.items():
                axis.broken_barh(ranges, (row - 0.4, 0.8), facecolors=color, hatch=hatch, edgecolor="white")
        for index, mark in enumerate(marks):
            at = mark["at"] - start
            axis.axvline(at, color=FAULT_COLOR, linestyle="--", linewidth=1.2)
            late = at > right / 2  # its label to the left of its line, inside the chart (not over the legend)
            axis.annotate(  # each label a line lower than the last, so that close marks' labels do not overlap
                mark["label"], (at, 1), xycoords=("data", "axes fraction"), xytext=(-3 if late else 3, -3 - 11 * index),
                textcoords="offset points", ha="right" if late else "left", va="top", color=FAULT_COLOR, fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )  # fmt: skip
        fault = [Line2D([], [], color=FAULT_COLOR, linestyle="--", label="fault")] if marks else []
        axis.legend(handles=legend + fault, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        axis.set_yticks(range(len(workers)), list(workers))
        axis.invert_yaxis()
        axis.set_title(f"{title}: makespan {makespan(records):.1f} s")
        axis.set_xlabel("seconds since the first task started")
        axis.set_xlim(0, right)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    drop_labels_wider_than_their_bars(figure, labels)
    return figure


def drop_labels_wider_than_their_bars(figure, labels):
    """Each bar's number only where it fits the bar, as on the dashboard: the quick tasks'
    numbers would pile up on one another."""
    renderer = figure.canvas.get_renderer()
    for axis, text, left, length in labels:
        start, end = axis.transData.transform([(left, 0), (left + length, 0)])[:, 0]
        if text.get_window_extent(renderer).width > end - start:
            text.remove()


def save_png(path, runs):
    """Save the timeline_figure of the runs as a PNG."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - see timeline_figure

    figure = timeline_figure(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
