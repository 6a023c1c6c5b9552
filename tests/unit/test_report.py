"""report.py compare: two runs side by side, a verdict and their chart."""

import re

import report
import runs
from example_runs import CUT_FIRST, FAIR, ROUND_ROBIN


def test_compare_prints_both_runs_and_a_verdict(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    first = {"name": "round-robin", "workers": 3, "events": ROUND_ROBIN}
    second = {"name": "fair", "workers": 3, "events": FAIR}
    report.compare(first, second, "fair-dispatch")
    out = capsys.readouterr().out
    assert "makespan s" in out and "18.0" in out and "10.0" in out
    assert "Verdict: fair finished the same work 1.8x faster than round-robin" in out
    assert (tmp_path / "fair-dispatch.png").exists()


def test_compare_uses_the_same_makespan_and_the_workers_of_the_records(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "TIMELINES", tmp_path)
    report.compare({"name": "cut", "events": CUT_FIRST}, {"name": "fair", "events": FAIR}, "both")
    cells = [re.split(r"\s{2,}", line.strip()) for line in capsys.readouterr().out.splitlines()]
    rows = {label: values for label, *values in cells}
    assert rows["makespan s"] == ["7.0", "10.0"]
    assert rows["lower bound s"] == ["2.0", "8.0"]  # max(4 s / 3 workers, 2 s), max(24 s / 3, 6 s)
