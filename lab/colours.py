"""The colour of each state of a task, the same on the dashboard (dashboard/static/
style.css, :root), in the PNG timeline (producer/chart.py) and in their legends:
tests/unit/test_lab_package.py checks the page's against these."""

STATE_COLOURS = {
    "waiting": "#ffffff",
    "running": "#2f6fdf",
    "done": "#1f9d55",
    "cut": "#e8871e",
    "rejected": "#d0312d",
}
