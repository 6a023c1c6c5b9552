"""The faults a demo notes beside a run, in timelines/NAME.marks (add_mark, which
labctl/demo.py calls): a JSON object a line, {"at": epoch seconds or an ISO 8601 time such as
docker inspect's, "label": "killed consumer-3"}. The producer marks them on the run's
timelines; the dashboard shows them on the live board while the run goes on."""

import json
from datetime import datetime


def moment(value):
    """Epoch seconds, from a number or from an ISO 8601 time such as docker inspect's."""
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value).timestamp()


def read_marks(path):
    """The marks in a NAME.marks file as [{"at": epoch seconds, "label": text}]. No file,
    or a line that is not such an object, gives no mark: a chart without its marks beats
    no chart."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        return []
    marks = []
    for line in lines:
        try:
            mark = json.loads(line)
            marks.append({"at": moment(mark["at"]), "label": str(mark["label"])})
        except (ValueError, TypeError, KeyError):
            continue
    return marks


def add_mark(path, at, label):
    """One mark more in a NAME.marks file (a demo notes the faults it causes there)."""
    with path.open("a") as marks:
        marks.write(json.dumps({"at": at, "label": label}) + "\n")
