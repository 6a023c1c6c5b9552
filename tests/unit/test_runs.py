"""Saved runs and the fault marks a demo notes beside them."""

import json

import pytest

import chart
import display
import new_task
import runs
from example_runs import BATCH, CUT_FIRST, FAIR
from lab import figures


def test_runs_are_saved_as_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    run = {"name": "fair", "batch": BATCH, "workers": 3, "sent": 9, "events": FAIR}
    png = runs.save_run("fair", run)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    saved = json.loads((tmp_path / "fair.json").read_text())
    # No fault marked; the figures and segments every place shows (a replay draws these).
    assert saved == {**run, "marks": [], "figures": figures.figures(FAIR), "segments": figures.drawn_segments(FAIR)}


def write_marks(path, *lines):
    path.write_text("\n".join(lines) + "\n")


def test_marks_a_demo_noted_are_saved_with_the_run_and_drawn(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    write_marks(
        tmp_path / "crash.marks",
        '{"at": "1970-01-01T00:01:40.5Z", "label": "killed consumer-1"}',  # docker inspect's time, 100.5
        '{"at": 102.25, "label": "a number"}',
        "not JSON",
        '{"at": "yesterday", "label": "no time"}',
        '{"label": "no time at all"}',
        '{"at": 50, "label": "before the run: from an earlier one"}',
    )
    run = {"name": "crash", "batch": BATCH, "workers": 3, "sent": 2, "events": CUT_FIRST}
    # Under the time axis (64 columns for 7 s, after the 13 of "worker |"), at 0.5 s and 2.25 s.
    drawn = [" " * (13 + 5) + "^ killed consumer-1", " " * (13 + 21) + "^ a number"]
    display.print_run(run, runs.marks_of(run))  # as send.sh --wait does, before it saves the run
    assert capsys.readouterr().out.rstrip().splitlines()[-2:] == drawn
    png = runs.save_run("crash", run)
    marks = [{"at": 100.5, "label": "killed consumer-1"}, {"at": 102.25, "label": "a number"}]
    assert json.loads((tmp_path / "crash.json").read_text())["marks"] == marks and png.exists()
    (tmp_path / "crash.marks").unlink()  # the saved run keeps them
    saved = runs.load(tmp_path / "crash.json")
    display.print_run(saved, runs.marks_of(saved))
    assert capsys.readouterr().out.rstrip().splitlines()[-2:] == drawn
    axis = chart.timeline_figure([("crash", figures.segments(CUT_FIRST), marks)]).axes[0]
    assert [line.get_xdata()[0] for line in axis.lines] == [0.5, 2.25]
    assert {"killed consumer-1", "a number"} <= {text.get_text() for text in axis.texts}
    assert [text.get_text() for text in axis.get_legend().get_texts()][-1] == "fault"


def test_no_marks_file_or_an_unreadable_one_means_no_marks(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    run = {"name": "crash", "events": CUT_FIRST}
    assert runs.marks_of(run) == []
    (tmp_path / "crash.marks").write_bytes(b"\xff\xfe")
    assert runs.marks_of(run) == []


def test_send_wait_says_when_its_run_replaces_one_saved_under_the_same_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    run = {"name": "fair", "batch": BATCH, "workers": 3, "sent": 9, "events": FAIR}
    assert new_task.show_run(run, None, 9) == 0
    assert "replaced" not in capsys.readouterr().out
    assert new_task.show_run(run, None, 9) == 0
    assert capsys.readouterr().out.rstrip().endswith("(It replaced an earlier run saved as 'fair'.)")


def test_a_save_stopped_half_way_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
    """The producer killed while it drew the chart (a demo's Ctrl+C during its report) left the
    new NAME.json beside the earlier run's NAME.png."""
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    first = {"name": "fair", "batch": BATCH, "workers": 3, "sent": 9, "events": FAIR}
    runs.save_run("fair", first)
    saved = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def killed(path, drawn):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.chart, "save_png", killed)
    with pytest.raises(KeyboardInterrupt):
        runs.save_run("fair", {**first, "batch": "another"})
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if not path.name.startswith(".")} == saved


def test_a_run_with_no_task_done_takes_away_the_chart_of_an_earlier_run_of_its_name(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    runs.save_run("fair", {"name": "fair", "batch": BATCH, "workers": 3, "sent": 9, "events": FAIR})
    assert runs.save_run("fair", {"name": "fair", "batch": "b2", "workers": 3, "sent": 1, "events": []}) is None
    assert not (tmp_path / "fair.png").exists() and json.loads((tmp_path / "fair.json").read_text())["batch"] == "b2"
