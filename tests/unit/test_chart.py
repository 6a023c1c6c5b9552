"""The timeline chart: its legend, and labels that read well on their bars."""

import chart
from example_runs import CRASH, record, schedule
from lab import figures


def contrast(first, second):
    """WCAG contrast ratio of two matplotlib colours (4.5 and up reads well)."""
    from matplotlib.colors import to_rgb  # noqa: PLC0415

    def luminance(color):
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_chart_has_a_legend_and_every_bar_label_reads_well_on_its_bar():
    events = [*CRASH, *schedule({f"consumer-{n}": [(n, 1)] for n in range(4, 14)})]  # 12 rows: every colour
    figure = chart.timeline_figure([("all", figures.segments(events), [])])
    axis = figure.axes[0]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "done", "redelivered (hatched)", "cut short"
    ]  # fmt: skip
    labels = [text for text in axis.texts if text.get_text().isdigit()]
    assert len(labels) == 13  # tasks 1 to 13, and task 3 cut short
    for text in labels:
        (bar,) = [c for c in axis.collections if c.get_paths()[0].get_extents().contains(*text.get_position())]
        assert contrast(text.get_color(), bar.get_facecolor()[0]) >= 4.5, text.get_text()
    assert any(text.get_text() == "3" and text.get_color() == "black" for text in labels)  # on the grey cut bar


def test_tasks_with_no_work_are_seen_and_their_numbers_not_piled_on_their_thin_bars():
    """check-worker's check 3: a 4-dot task, and five quick ones done one after another on the other copy."""
    events = schedule({"copy-1": [(1, 4.0)], "copy-2": [(n, 0.0003) for n in range(2, 7)]})
    figure = chart.timeline_figure([("check 3", figures.segments(events), [])])
    axis = figure.axes[0]
    assert [text.get_text() for text in axis.texts if text.get_text().isdigit()] == ["1"]
    (quick,) = [c for c in axis.collections if len(c.get_paths()) == 5]
    widths = [path.get_extents().width for path in quick.get_paths()]
    assert min(widths) >= axis.get_xlim()[1] / 400, widths  # a thin bar each, not nothing


def test_a_mark_late_in_the_run_has_its_label_inside_the_chart_not_over_the_legend():
    """check-worker's check 5: the broker restarted near the end of the run."""
    events = schedule({"copy-1": [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)], "copy-2": [(5, 3.0)]})
    marks = [{"at": 100.5, "label": "killed copy-2"}, {"at": 103.9, "label": "broker restarted"}]
    figure = chart.timeline_figure([("check 5", figures.segments(events), marks)])
    figure.canvas.draw()
    axis = figure.axes[0]
    inside = axis.get_window_extent()
    for label in [text for text in axis.texts if not text.get_text().isdigit()]:
        box = label.get_window_extent()
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, label.get_text()


def test_a_mark_after_the_last_task_done_is_inside_the_chart():
    """A check-worker run can end with a lost task: its mark comes after every task done."""
    done = [{"message_id": "b.1", "worker": "copy-1", "started": 0.0, "finished": 1.0, "redelivered": False}]
    figure = chart.timeline_figure([("lost", done, [{"at": 5.0, "label": "task 2 lost"}])])
    assert figure.axes[0].get_xlim()[1] >= 5.0


def test_a_big_run_is_drawn_with_a_few_collections_and_no_labels():
    """100,000 tasks drew a patch and a label each: minutes after the batch had ended."""
    segments = [record(n, f"consumer-{n % 3 + 1}", n / 1000, n / 1000 + 0.0005) for n in range(1, 20_001)]
    figure = chart.timeline_figure([("big", segments, [])])
    axis = figure.axes[0]
    assert len(axis.texts) == 0
    assert len(axis.collections) == 3  # one per worker and state
