"""scripts/demo-elastic.sh on the real stack, on a small workload (bursts of 8 two-dot
tasks, 2 s apart; the test stack's SECONDS_PER_DOT is 0.5): three pools, every task done,
the elastic pool grown beyond its minimum, the figures and the chart, the pool given back;
and Ctrl+C in the middle gives the pool back too."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from lab.figures import tally

SMALL = ("--burst", "8", "--pause", "2")


@pytest.mark.timeout(240)
def test_the_demo_runs_the_workload_on_three_pools_and_gives_the_pool_back(lab):
    result = lab.script("demo-elastic.sh", *SMALL, timeout=220)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^(fixed \d+|elastic) +[\d.]+s +[\d.]+s +(\d+) ", result.stdout, re.MULTILINE)
    assert rows == [("fixed 1", "0"), ("fixed 6", "0"), ("elastic", "0")], result.stdout  # none lost
    for name, part in (("fixed-1", 1), ("fixed-6", 1), ("elastic", 2)):
        run = json.loads((lab.timelines / f"elastic-{name}-{part}.json").read_text())
        assert (tally(run)["done"], tally(run)["lost"]) == (8, 0)
    # The elastic pool grew: more workers than its minimum did its tasks, by their own records.
    elastic = [json.loads((lab.timelines / f"elastic-elastic-{part}.json").read_text()) for part in (1, 2)]
    assert len({e["worker"] for run in elastic for e in run["events"] if e["event"] == "done"}) >= 2
    assert (lab.timelines / "elastic.png").read_bytes()[:4] == b"\x89PNG"
    assert len(lab.worker_names()) == 3  # the pool the demo found


@pytest.mark.timeout(120)
def test_ctrl_c_in_the_middle_gives_the_pool_back(lab):
    demo = subprocess.Popen(
        [str(lab.root / "scripts/demo-elastic.sh"), *SMALL],
        cwd=lab.root, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    said = []
    for line in demo.stdout:
        said.append(line)
        if "fixed pool of 1" in line:
            time.sleep(3)  # the pool made 1, its first burst under way
            os.killpg(demo.pid, signal.SIGINT)
            break
    said.append(demo.stdout.read())
    assert demo.wait(timeout=60) == 130, said
    assert "==> Back to the 3 workers found at the start" in "".join(said)
    # Nothing left of its process group: a sender's last helper (its stderr filter) may take
    # a moment to see its pipe close.
    lab.wait_for(lambda: not group_alive(demo.pid), "the demo's process group to end", timeout=10,
                 seen=lambda: subprocess.run(["ps", "-o", "pid,args", "-g", str(demo.pid)], capture_output=True,
                                             text=True).stdout)  # fmt: skip
    assert len(lab.worker_names()) == 3
    assert lab.compose("ps", "--all", "--quiet", "producer").stdout.strip() == ""  # no sender left behind


def group_alive(group):
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
