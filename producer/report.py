"""Who did what, and when: the evidence behind the lab's answers, from saved runs.

    report.py show timelines/NAME.json            the table and timeline of a saved run
    report.py round-robin timelines/NAME.json     did worker i get tasks i, i+N, i+2N ...?
    report.py compare A.json B.json --name NAME   two runs side by side, a verdict, NAME.png

`send.sh --wait` saves a run (runs.py); lab/figures.py reads the records, display.py
and chart.py show them.
"""

import argparse
import sys

import chart
import display
import runs
from lab.figures import segments


def compare(first, second, name):
    """Print two runs of the same workload side by side; save both timelines as timelines/NAME.png."""
    display.print_comparison(first, second)
    png = runs.TIMELINES / f"{name}.png"
    drawn = []
    for run in (first, second):
        marks = runs.marks_of(run)
        drawn.append((run["name"], segments(run["events"], marks), marks))
    chart.save_png(png, drawn)
    print(f"Timeline chart: {runs.shown(png)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show").add_argument("run")
    commands.add_parser("round-robin").add_argument("run")
    both = commands.add_parser("compare")
    both.add_argument("first")
    both.add_argument("second")
    both.add_argument("--name", default="comparison", help="save the chart as timelines/NAME.png")
    args = parser.parse_args(argv)
    if args.command == "show":
        run = runs.load(args.run)
        display.print_run(run, runs.marks_of(run))
        return 0
    if args.command == "round-robin":
        return display.explain_round_robin(runs.load(args.run))
    compare(runs.load(args.first), runs.load(args.second), args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
