"""The golden files (tests/golden) are what lab/figures.py computes today."""

import json

import make_golden
from lab.schema import problem


def test_the_golden_files_are_up_to_date():
    for name, text in make_golden.files().items():
        on_disk = make_golden.HERE / name
        assert on_disk.exists() and on_disk.read_text() == text, f"run python3 tests/golden/make_golden.py ({name})"


def test_the_golden_files_hold_the_three_cases_the_page_once_drew_otherwise():
    def golden(name):
        return json.loads((make_golden.HERE / f"{name}.json").read_text())

    cut = [s for s in golden("cut_then_own_task")["segments"] if s["state"] == "cut"]
    assert [(s["started"], s["finished"]) for s in cut] == [(100, 102)]  # not over its worker's next task
    cut = [s for s in golden("handed_back")["segments"] if s["state"] == "cut"]
    assert [(s["started"], s["finished"]) for s in cut] == [(100, 103)]  # to the retry, not a stub
    figures = golden("zero_work_worker")["figures"]
    assert (figures["workers"], figures["lower_bound"]) == (3, 2.0)


def test_every_golden_record_is_one_the_schema_accepts():
    for name in make_golden.files():
        run = json.loads((make_golden.HERE / name).read_text())["run"]
        problems = [(record, problem(record, event=False)) for record in run["events"]]
        assert [found for found in problems if found[1]] == [], name
