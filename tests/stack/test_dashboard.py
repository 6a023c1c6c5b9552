"""The live dashboard in a real headless Chromium, against the test stack while it works.

The page is watched as a student would see it: a MutationObserver in the page
records every state each task bar takes and how many tasks wait in each lane,
so a state that lasts one frame is seen too. No sleeps: the tests wait on the
page's attributes and on send.sh.
"""

import json
import os
import re
import subprocess
import threading
import time
import urllib.request

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from autoscaler import autoscaling
from browser import CHROMIUM, chromium, on_top
from stacklab import CONSUMERS, ROOT

ARTIFACTS = ROOT / "artifacts"
WORKERS = [f"consumer-{n}" for n in range(1, CONSUMERS + 1)]
LIVE = '[data-board="live"]'

pytestmark = pytest.mark.skipif(
    not CHROMIUM and os.environ.get("CI") != "true", reason="needs Chromium: apt-get install chromium"
)  # in CI a missing browser fails the tests instead

# Records, per batch, every state each bar took (in order) and the most tasks
# seen waiting at once in each lane; and whether the figures table ever counted a worker
# on its first task as busy (a moment that passes: a test that looks late misses it).
RECORDER = """() => {
  const seen = window.seen = { states: {}, mostWaiting: {}, firstTaskBusy: false };
  const look = () => {
    for (const row of document.querySelectorAll('[data-board="live"] table.stats tr')) {
      const [_worker, tasks, busy] = [...row.cells].map(cell => cell.textContent);
      seen.firstTaskBusy ||= tasks === "0 + 1 running" && parseFloat(busy) > 0;
    }
    const board = document.querySelector('[data-board="live"] svg');
    const batch = board.dataset.batch;
    for (const lane of board.querySelectorAll(".lane")) {
      const key = `${batch}/${lane.dataset.worker}`;
      const waiting = lane.querySelectorAll('g[data-task][data-state="waiting"]').length;
      seen.mostWaiting[key] = Math.max(seen.mostWaiting[key] ?? 0, waiting);
      for (const bar of lane.querySelectorAll("g[data-task]")) {
        const states = seen.states[`${key}/${bar.dataset.task}`] ??= [];
        if (states.at(-1) !== bar.dataset.state) states.push(bar.dataset.state);
      }
    }
  };
  new MutationObserver(look).observe(document.getElementById("boards"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state", "data-batch"] });
  look();
}"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, stack):
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{stack.dashboard_port}/")
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    except AssertionError as error:
        pytest.fail(f"the page did not go live: {error}; {stream_diagnosis(stack, page)}")
    # The queues' figures, read from the broker while a page is open (none kept while none is).
    expect(page.locator("#consumers")).to_have_text(str(CONSUMERS))
    expect(page.locator("#ready")).to_have_text("0")
    page.evaluate(RECORDER)
    yield page
    page.close()
    assert not errors, errors


def start_workers(lab, prefetch):
    lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}", env={"PREFETCH": str(prefetch)})
    lab.wait_for(lambda: lab.queue()[1] == CONSUMERS, f"{CONSUMERS} consumers attached")


def send_in_background(lab, *args):
    return subprocess.Popen([str(ROOT / "scripts" / "send.sh"), *args, "--wait"], cwd=ROOT, env=lab.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(sending):
    output, _ = sending.communicate(timeout=120)
    assert sending.returncode == 0, output
    return output


# The most tasks seen waiting at once in each lane of a replay board while it plays.
REPLAY_WAITING = """board => {
  const most = window.replayWaiting = {};
  const look = () => {
    for (const lane of document.querySelectorAll(`${board} svg .lane`)) {
      const waiting = lane.querySelectorAll('g[data-task][data-state="waiting"]').length;
      most[lane.dataset.worker] = Math.max(most[lane.dataset.worker] ?? 0, waiting);
    }
  };
  new MutationObserver(look).observe(document.getElementById("boards"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  look();
}"""


def seen_in(page, batch):
    """{(worker, task): [states in order]} and {worker: most waiting at once}, for one batch."""
    seen = page.evaluate("window.seen")
    states = {}
    for key, value in seen["states"].items():
        key_batch, worker, task = key.split("/")
        if key_batch == batch:
            states[worker, int(task)] = value
    most = {key.split("/")[1]: n for key, n in seen["mostWaiting"].items() if key.split("/")[0] == batch}
    return states, most


def lane(page, worker, board=LIVE):
    return page.locator(f'{board} svg .lane[data-worker="{worker}"]')


def bars(page, state, board=LIVE):
    return page.locator(f'{board} svg g[data-task][data-state="{state}"]')


LABEL_CONTRASTS = """() => {
  const luminance = colour => {
    const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(v => v / 255)
      .map(c => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll('[data-board="live"] g[data-task]')].map(bar => {
    const [face, text] = [bar.querySelector("rect"), bar.querySelector("text")]
      .map(element => luminance(getComputedStyle(element).fill)).sort((x, y) => y - x);
    return (face + 0.05) / (text + 0.05);
  });
}"""


def label_contrasts(page):
    """Each live bar's label against its bar, as the browser paints them (WCAG contrast ratio)."""
    return page.evaluate(LABEL_CONTRASTS)


def assert_accessible(page, what):
    """axe-core finds no serious or critical violation on the page as it stands."""
    violations = Axe().run(page).response["violations"]
    grave = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]][:3]) for v in violations
             if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert not grave, f"{what}: {grave}"


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"dashboard-{name}.png", full_page=True)


@pytest.fixture
def no_prefetch_limit(lab):
    """Workers with PREFETCH=0 for one test, and the lab's prefetch 1 again after it: the lab
    fixture keeps a stack that runs, so a test that changes the workers puts them back."""
    start_workers(lab, prefetch=0)
    yield
    start_workers(lab, prefetch=1)


def test_prefetch_0_deals_every_task_out_at_once_and_the_page_shows_them_waiting(lab, page, no_prefetch_limit):
    sending = send_in_background(lab, "9", "--dots", "2", "--name", "dashboard-prefetch-0")
    for worker in WORKERS:  # the broker deals out all nine at once: each lane's buffer holds tasks
        expect(lane(page, worker).locator('g[data-task][data-state="waiting"]').first).to_be_attached()
    screenshot(page, "prefetch-0-dealt")
    finish(sending)
    expect(bars(page, "done")).to_have_count(9)
    for worker in WORKERS:
        expect(lane(page, worker).locator('g[data-task][data-state="done"]')).to_have_count(3)
    screenshot(page, "prefetch-0-done")
    expect(page.locator("#batch-name")).to_contain_text("run dashboard-prefetch-0")
    expect(page.locator("#batch-name")).to_contain_text("prefetch 0 (no limit)")

    # Replayed, its first frame is there before Play, each worker's buffer full as it was.
    page.click("#show-replay")
    page.select_option("#run-a", "dashboard-prefetch-0")
    page.select_option("#run-b", "")
    expect(page.locator("#boards")).to_have_attribute("data-replay", "loaded")
    replay = '[data-board="replay-1"]'
    expect(bars(page, "running", replay).first).to_be_attached()
    expect(page.locator(f"{replay} h2")).to_contain_text("prefetch 0 (no limit)")
    page.evaluate(REPLAY_WAITING, replay)
    page.fill("#speed", "1")
    page.click("#play")
    expect(page.locator("#boards")).to_have_attribute("data-replay", "finished")
    replayed = page.evaluate("window.replayWaiting")
    assert all(replayed[worker] >= 2 for worker in WORKERS), replayed  # as the live board showed them

    run, done = lab.saved_run("dashboard-prefetch-0")
    states, most_waiting = seen_in(page, run["batch"])
    assert sorted(task for _worker, task in states) == list(range(1, 10))
    for (worker, task), sequence in states.items():
        assert done[task]["worker"] == worker  # drawn on the lane of the worker that did it
        assert sequence[-1] == "done"
        assert sequence.index("running") < sequence.index("done")
    assert all(most_waiting[worker] >= 2 for worker in WORKERS), most_waiting  # 3 each, one running
    waited = [task for (_worker, task), sequence in states.items() if sequence[0] == "waiting"]
    assert len(waited) >= 6, states  # at least the second and third of each worker waited, then ran
    delays = sorted(page.evaluate("window.labDashboard.delays"))
    print(f"events reached the page {delays[len(delays) // 2] * 1000:.0f} ms (median), "
          f"{delays[-1] * 1000:.0f} ms (most) after they happened, over {len(delays)} events")  # fmt: skip
    assert delays[len(delays) // 2] < 0.2, delays


def test_fair_dispatch_never_shows_a_worker_holding_more_than_one_task_waiting(lab, page):
    start_workers(lab, prefetch=1)
    sending = send_in_background(lab, "9", "--heavy", "3:6", "--name", "dashboard-fair")
    expect(bars(page, "running")).to_have_count(CONSUMERS)  # every worker busy
    screenshot(page, "fair-dispatch-running")
    assert_accessible(page, "the live page mid-batch")
    expect(page.get_by_role("img", name="Live")).to_have_attribute("aria-label", re.compile(r"\d+ running"))
    summary, table = page.locator(f"{LIVE} .summary"), page.locator(f"{LIVE} table.stats")
    expect(summary).to_contain_text("so far")
    expect(table.locator("th")).to_have_text(["worker", "tasks so far", "busy s so far"])
    # A worker on its first task: its running time counts as busy (it said "0 tasks, 0.0 busy s").
    page.wait_for_function("window.seen.firstTaskBusy")
    expect(page.locator("#batch-name")).to_contain_text("prefetch 1")
    expect(summary).to_contain_text(re.compile(r"^[3-7] tasks done so far"))
    screenshot(page, "fair-dispatch-midway")  # docs/dashboard-fair-dispatch.png
    output = finish(sending)
    expect(bars(page, "done")).to_have_count(9)
    expect(summary).not_to_contain_text("so far")
    expect(table.locator("th")).to_have_text(["worker", "tasks", "busy s"])
    terminal = re.search(r"makespan ([\d.]+) s for 9 tasks on 3 workers; lower bound ([\d.]+) s \(ratio ([\d.]+)\)",
                         output)  # fmt: skip
    assert terminal, output
    makespan, bound, ratio = terminal.groups()
    expect(summary).to_contain_text(f"makespan {makespan} s · lower bound max(total/3, longest) {bound} s ({ratio}×")
    expect(page.locator("#batch-name")).to_contain_text("run dashboard-fair")
    expect(page.locator("#announce")).to_contain_text("batch over, 9 tasks done", timeout=10_000)
    screenshot(page, "fair-dispatch-done")
    assert min(label_contrasts(page)) >= 4.5

    run, done = lab.saved_run("dashboard-fair")
    states, most_waiting = seen_in(page, run["batch"])
    assert sorted(task for _worker, task in states) == list(range(1, 10))
    # Lanes of other consumers the broker announced (an earlier module's clients, on this stack) may be drawn too.
    assert set(WORKERS) <= set(most_waiting), most_waiting
    assert all(n <= 1 for n in most_waiting.values()), most_waiting
    assert page.locator(f"{LIVE} table.stats").inner_text().count("consumer-") == CONSUMERS
    heavy_workers = {done[task]["worker"] for task in (3, 6, 9)}
    assert len(heavy_workers) > 1  # the heavy tasks spread out (round-robin gives them all to one worker)


TERMINAL_FIGURES = re.compile(
    r"makespan ([\d.]+) s for (\d+) tasks on 3 workers; lower bound ([\d.]+) s \(ratio ([\d.]+)\)"
)


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_the_dashboard_restarted_mid_batch_then_shows_every_task_with_the_terminals_figures_and_no_gap(lab, browser,
                                                                                                      how):  # fmt: skip
    """It once showed tasks 19-30 of 30 as "12 tasks done", no run name, no notice: what came
    while it was down was gone. It reads the stream lab.history now, from an hour back."""
    name = f"dashboard-{how}-mid-batch"
    watching = browser.new_page()
    try:
        watching.goto(f"http://127.0.0.1:{lab.dashboard_port}/")
        sending = send_in_background(lab, "12", "--dots", "1", "--name", name)
        expect(watching.locator("#batch-name")).to_contain_text(f"run {name}")
        done_at_least(watching, 3)  # a quarter through
    finally:
        watching.close()
    if how == "restart":
        lab.compose("restart", "dashboard")
    else:
        lab.compose("kill", "dashboard")
        assert lab.compose("ps", "--quiet", "dashboard").stdout.strip() == ""  # not running
        lab.compose("start", "dashboard")
    output = finish(sending)
    terminal = TERMINAL_FIGURES.search(output)
    assert terminal and terminal.group(2) == "12", output
    makespan, _tasks, bound, ratio = terminal.groups()
    lab.wait_for(lambda: dashboard_answers(lab), "the dashboard answers again")
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    try:
        page.goto(f"http://127.0.0.1:{lab.dashboard_port}/")
        run, _done = lab.saved_run(name)
        expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
        expect(bars(page, "done")).to_have_count(12)
        expect(page.locator("#batch-name")).to_contain_text(f"run {name}")
        summary = page.locator(f"{LIVE} .summary")
        expect(summary).to_contain_text(f"12 tasks done · makespan {makespan} s · lower bound "
                                        f"max(total/3, longest) {bound} s ({ratio}×")  # fmt: skip
        expect(page.locator("#gaps")).to_be_hidden()
        assert page.evaluate("window.labDashboard.status.gaps") == []
        screenshot(page, f"{how}-mid-batch")
    finally:
        page.close()
    # The workers attach again, so the dashboard hears the broker say they are real (heard live
    # only, not in the stream): the later tests' forged floods count as forged, as before.
    lab.compose("restart", "consumer")
    lab.wait_for(lambda: lab.queue()[1] == CONSUMERS, f"{CONSUMERS} consumers attached")


def done_at_least(page, count):
    done = f'{LIVE} svg g[data-task][data-state="done"]'
    page.wait_for_function("([done, count]) => document.querySelectorAll(done).length >= count", arg=[done, count])


def close_dashboard_connections(lab):
    """The broker closes the dashboard's connection (named "dashboard"), as a lost network ends it."""
    listing = lab.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "--quiet", "--no-table-headers",
                          "list_connections", "pid", "client_properties").stdout  # fmt: skip
    pids = [line.split("\t")[0] for line in listing.splitlines() if '{"connection_name","dashboard"}' in line]
    for pid in pids:
        lab.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "--quiet", "close_connection", pid, "cut by a test")
    assert pids, listing[-2000:]
    return pids


def test_the_dashboard_cut_off_mid_batch_reads_on_from_its_offset_and_the_page_shows_no_gap(lab, page):
    """It once marked a gap for the time it had no broker, its batch's figures "uncertain"."""
    sending = send_in_background(lab, "12", "--dots", "1", "--name", "dashboard-cut-off")
    expect(page.locator("#batch-name")).to_contain_text("run dashboard-cut-off")
    done_at_least(page, 3)
    assert close_dashboard_connections(lab)
    lab.wait_for(lambda: "lab.history from offset" in dashboard_log(lab), "the dashboard reading on from an offset")
    terminal = TERMINAL_FIGURES.search(finish(sending))
    assert terminal and terminal.group(2) == "12"
    makespan = terminal.group(1)
    run, _done = lab.saved_run("dashboard-cut-off")
    expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
    expect(bars(page, "done")).to_have_count(12)
    expect(page.locator(f"{LIVE} .summary")).to_contain_text(f"12 tasks done · makespan {makespan} s")
    expect(page.locator("#gaps")).to_be_hidden()
    assert page.evaluate("window.labDashboard.status.gaps") == []
    expect(page.locator("#batch-name")).not_to_contain_text("events were missed")
    assert bars(page, "unheard").count() == 0


def test_a_worker_killed_mid_task_leaves_a_cut_bar_and_the_task_is_done_on_another_lane(lab, page):
    sending = send_in_background(lab, "6", "--dots", "4", "--name", "dashboard-crash")
    first = page.locator(f'{LIVE} svg g[data-task="1"][data-state="running"]')
    expect(first).to_be_attached()
    victim = first.evaluate("bar => bar.closest('.lane').dataset.worker")
    container = next(
        name
        for name in lab.compose("ps", "--format", "{{.Name}}", "consumer").stdout.split()
        if name.endswith(f"-{victim}")
    )
    lab.run(["docker", "kill", "--signal", "KILL", container])
    finish(sending)

    expect(lane(page, victim).locator('g[data-task="1"][data-state="cut"]')).to_be_attached()
    again = page.locator(f'{LIVE} svg g[data-task="1"][data-state="done"][data-redelivered="true"]')
    expect(again).to_have_count(1)
    assert again.evaluate("bar => bar.closest('.lane').dataset.worker") != victim
    expect(page.locator(f'{LIVE} svg path.link[data-from="{victim}"]')).to_have_count(1)
    expect(lane(page, victim)).to_have_attribute("data-attached", "false")  # marked as gone
    expect(bars(page, "done")).to_have_count(6)
    screenshot(page, "killed-worker")


def test_replay_draws_a_saved_run_and_two_runs_side_by_side(lab, page):
    for name in ("dashboard-replay-a", "dashboard-replay-b"):
        result = lab.send("6", "--dots", "1", "--wait", "--name", name)
        assert result.returncode == 0, result.stdout + result.stderr
    # A fault as a demo marks one (a worker killed), half a second into the first run.
    saved = lab.timelines / "dashboard-replay-a.json"
    run = json.loads(saved.read_text())
    start = min(event["started"] for event in run["events"])
    marks = [{"at": start + 0.5, "label": "killed consumer-2"}, {"at": start + 0.6, "label": "consumer-2 back"}]
    saved.write_text(json.dumps({**run, "marks": marks}))
    page.click("#show-replay")
    expect(page.locator("#run-a option", has_text="dashboard-replay-b")).to_be_attached()
    page.select_option("#run-a", "dashboard-replay-a")
    page.select_option("#run-b", "dashboard-replay-b")
    expect(page.locator("#boards")).to_have_attribute("data-replay", "loaded")
    for board in ('[data-board="replay-1"]', '[data-board="replay-2"]'):  # the first frame, before Play
        expect(bars(page, "running", board).first).to_be_attached()
        expect(page.locator(f"{board} h2")).to_contain_text("prefetch 1")
    page.fill("#speed", "10")
    page.click("#play")
    expect(page.locator("#boards")).to_have_attribute("data-replay", "finished")
    for board in ('[data-board="replay-1"]', '[data-board="replay-2"]'):
        expect(bars(page, "done", board)).to_have_count(6)
    expect(page.locator('[data-board="replay-1"] svg .fault-label')).to_have_text(["killed consumer-2",
                                                                                  "consumer-2 back"])  # fmt: skip
    assert on_top(page, '[data-board="replay-1"] svg .fault-label')  # not under the lanes
    boxes = page.locator('[data-board="replay-1"] svg .fault-label').evaluate_all(
        "labels => labels.map(l => { const b = l.getBBox(); return [b.x, b.y, b.width, b.height]; })"
    )
    (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes
    assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, boxes  # close faults' labels apart
    expect(page.locator('[data-board="replay-2"] svg .fault-label')).to_have_count(0)
    axis = "svg .axis text:not(.fault-label)"
    first, second = (page.locator(f'[data-board="replay-{n}"] {axis}').all_inner_texts() for n in (1, 2))
    assert first == second  # one time axis for both
    expect(page.locator(LIVE)).to_be_hidden()
    expect(page.get_by_role("button", name="Replay a saved run")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Live")).to_have_attribute("aria-pressed", "false")
    assert_accessible(page, "a replay")
    screenshot(page, "replay")


def long_run(batch="long"):
    """A saved run of half an hour, 120 tasks of 12 to 60 s on three workers: bars 6 to 28 px wide."""
    events, clocks = [], dict.fromkeys(WORKERS, 1_000.0)
    for number in range(1, 121):
        worker, seconds = WORKERS[number % 3], (12, 20, 28, 36, 44, 60)[number % 6]
        started = clocks[worker]
        clocks[worker] += seconds
        events.append({"event": "done", "worker": worker, "task": f"Task {number}", "batch": batch,
                       "message_id": f"{batch}.{number}", "redelivered": False, "started": started,
                       "finished": started + seconds})  # fmt: skip
    return {"name": "dashboard-long", "batch": batch, "workers": 3, "sent": 120, "events": events}


def quick_run(batch="quick"):
    """A saved run of tasks without work, the first of them 0.7 s into a second."""
    events = []
    for number, at in enumerate([1_000.7] * 30 + [1_001.3] * 40 + [1_002.2] * 20, start=1):
        events.append({"event": "done", "worker": "consumer-1", "task": "Quick", "message_id": f"{batch}.{number}",
                       "batch": batch, "redelivered": False, "started": at, "finished": at})  # fmt: skip
    return {"name": "dashboard-quick", "batch": batch, "workers": 1, "sent": len(events), "events": events}


# Each visible label's width against its bar's, and against the next label in its lane.
LABEL_FITS = """board => {
  const out = [];
  for (const lane of document.querySelectorAll(`${board} svg .lane`)) {
    const labels = [...lane.querySelectorAll("g[data-task]")]
      .map(bar => [bar.querySelector("rect"), bar.querySelector("text")])
      .filter(([, text]) => text.getAttribute("visibility") !== "hidden" && text.textContent)
      .map(([rect, text]) => ({ bar: rect.getBBox(), text: text.getBBox() }))
      .sort((a, b) => a.bar.x - b.bar.x);
    labels.forEach((l, i) => out.push({ fits: l.text.width <= l.bar.width,
      clear: i === 0 || labels[i - 1].text.x + labels[i - 1].text.width <= l.text.x }));
  }
  return out;
}"""

BLOCKS = """board => [...document.querySelectorAll(`${board} svg .aggregate-block rect`)]
  .map(rect => [Number(rect.getAttribute("x")), Number(rect.getAttribute("width"))]).sort((a, b) => a[0] - b[0])"""


def replay_to_the_end(page, run):
    page.select_option("#run-a", run)
    page.select_option("#run-b", "")
    expect(page.locator('[data-board="replay-1"] h2')).to_contain_text(f"run {run} ")
    expect(page.locator("#boards")).to_have_attribute("data-replay", "loaded")
    page.fill("#speed", "10")
    page.click("#play")
    # A short run may be over before "playing" is seen (5 s at 10×: half a second).
    expect(page.locator("#boards")).to_have_attribute("data-replay", re.compile("^(playing|finished)$"))
    page.evaluate("window.labDashboard.replay.began -= 1e9")  # half an hour at 10× is long: to the end
    expect(page.locator("#boards")).to_have_attribute("data-replay", "finished")


def test_labels_fit_their_bars_at_long_time_scales_and_no_block_of_quick_tasks_hides_another(lab, page):
    lab.timelines.chmod(lab.timelines.stat().st_mode | 0o070)  # as send.sh leaves it: the dashboard reads it
    for run in (long_run(), quick_run()):
        (lab.timelines / f"{run['name']}.json").write_text(json.dumps(run))
    page.click("#show-replay")
    expect(page.locator("#run-a option", has_text="dashboard-quick")).to_be_attached()
    replay_to_the_end(page, "dashboard-long")
    expect(bars(page, "done", '[data-board="replay-1"]')).to_have_count(120)
    labels = page.evaluate(LABEL_FITS, '[data-board="replay-1"]')
    assert labels and all(label["fits"] and label["clear"] for label in labels), labels
    assert len(labels) < 120  # some bars are too narrow for any label
    screenshot(page, "long-run")
    replay_to_the_end(page, "dashboard-quick")
    blocks = page.evaluate(BLOCKS, '[data-board="replay-1"]')
    assert len(blocks) == 3
    for (x, width), (next_x, _) in zip(blocks, blocks[1:], strict=False):
        assert x + width <= next_x, blocks  # the first second's block was under the second's


def rejected(number, now):
    text = f"poison {number} " + "x" * 50
    return {"event": "rejected", "worker": "consumer-1", "task": text, "message_id": f"forged-rejects.{number}",
            "batch": "forged-rejects", "redelivered": False, "started": now, "reason": "not valid",
            "at": now}  # fmt: skip


def test_a_long_list_of_rejected_tasks_scrolls_in_its_box_and_the_page_does_not_move(lab, page):
    board = page.locator(LIVE)
    before = board.bounding_box()["y"]
    with lab.connect() as connection:
        channel = connection.channel()
        for number in range(1, 6):
            channel.basic_publish("lab.events", "", json.dumps([rejected(number, time.time())]))
    expect(page.locator("#rejected-list")).to_contain_text("poison 5")
    assert board.bounding_box()["y"] == before
    assert_accessible(page, "the live page with a long list of rejected tasks")


FORGED_MEMORY_BOUND_MIB = 150  # the dashboard idles near 40 MiB; the hub keeps at most 16 MiB of history
PWN = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def forged_messages(now):
    """What anyone with the lab's login could publish to lab.events: HTML in every field,
    wrong types, deep nesting, bodies over the bound."""
    html_task = {"worker": PWN, "message_id": f"{PWN}.1", "batch": PWN, "task": PWN, "redelivered": False,
                 "started": now, "at": now}  # fmt: skip
    events = [
        {"event": "done", **html_task, "finished": now + 1, "reason": PWN},
        {"event": "quick", "worker": PWN, "batch": PWN, "count": PWN, "at": now},
        {"event": "attached", "worker": PWN, "prefetch": PWN, "at": now},
        {"event": "done", **html_task, "worker": 42, "finished": now + 1},  # threw in the draw loop before
        {"event": "started", **html_task, "started": "soon"},
        {"event": PWN, "worker": PWN, "at": now},
    ]
    yield json.dumps(events).encode()
    yield json.dumps({"event": "done", "worker": PWN}).encode()
    yield b"[" * 100_000  # killed the dashboard with a RecursionError before
    yield b"<html>" + PWN.encode()
    yield b"[" + b" " * (2 << 20) + b"]"


def flood(now, messages=600, size=215_000):
    """600 messages of 215 KB: took the dashboard from 25 to 394 MiB before."""
    quick = {"event": "quick", "worker": "forger", "batch": "forged-flood", "count": 1, "at": now}
    many = json.dumps([quick] * (size // len(json.dumps(quick)))).encode()
    received = {"event": "received", "worker": "forger", "message_id": "forged-flood.1", "batch": "forged-flood"}
    long_task = json.dumps([{**received, "task": "x" * size, "started": now, "at": now}]).encode()
    for number in range(messages):
        yield many if number % 2 else long_task


def publish_events(lab, bodies):
    """Publish message bodies to lab.events, as anyone with the lab's login can (on loopback)."""
    with lab.connect() as connection:
        channel = connection.channel()
        for body in bodies:
            channel.basic_publish("lab.events", "", body)


def heard_after(lab, page, body, heard, seconds):
    """Publish `body` to lab.events until the page's `heard` holds, a second apart, or `seconds` pass:
    the dashboard reads only so much a second (hub.py) and drops the rest of a flood unread."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        publish_events(lab, [body])
        try:
            page.wait_for_function(heard, timeout=1000)
            return True
        except PlaywrightTimeoutError:
            continue
    return False


def stream_diagnosis(lab, page):
    """Why a page is not live: its EventSource, /events asked from here, the dashboard's container."""
    source = page.evaluate("[window.labDashboard.source?.readyState, window.labDashboard.streaming]")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.dashboard_port}/events", timeout=10) as response:
            probe = f"{response.status} after {time.monotonic() - started:.1f} s, then {response.readline()!r}"
    except OSError as error:
        probe = f"{error!r} after {time.monotonic() - started:.1f} s"
    container = lab.compose("ps", "--all", "--format", "{{.Status}}", "dashboard", check=False).stdout.strip()
    return (
        f"page's EventSource [readyState, streaming]: {source}; /events from here: {probe}; "
        f"dashboard: {container}; its log: {dashboard_log(lab)}"
    )


def dashboard_log(lab):
    return lab.compose("logs", "--no-color", "--tail", "20", "dashboard", check=False).stdout


def flood_diagnosis(lab, page):
    """Where the events stopped: the page's stream, the broker's queues, the dashboard's log."""
    state = page.evaluate("""() => { const d = window.labDashboard; return {
        streaming: d.streaming, status: d.status, refused: d.refused, workers: [...d.live.workers.keys()] }; }""")
    queues = lab.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "--quiet", "list_queues", "name", "messages",
                         "consumers", check=False).stdout  # fmt: skip
    return f"page: {state}; queues: {queues!r}; dashboard log: {dashboard_log(lab)}"


def mebibytes(usage):
    """'45.3MiB / 7.6GiB' -> 45.3"""
    amount = usage.split("/")[0].strip()
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2**20}
    unit = next(unit for unit in units if amount.endswith(unit))
    return float(amount[: -len(unit)]) * units[unit]


class MemoryWatch:
    """The most memory a container used while this watch ran (docker stats, about every second)."""

    def __init__(self, container):
        self.container, self.samples, self.stop = container, [], threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        while not self.stop.is_set():
            stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", self.container],
                                   capture_output=True, text=True, timeout=30)  # fmt: skip
            if stats.returncode == 0 and stats.stdout.strip():
                self.samples.append(mebibytes(stats.stdout))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join(timeout=60)


@pytest.mark.timeout(400)
def test_forged_events_are_refused_and_the_page_keeps_drawing_without_running_their_script(lab, page):
    container = lab.compose("ps", "--quiet", "dashboard").stdout.strip()
    started = lab.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", container]).stdout
    now = time.time()
    gaps = "window.labDashboard.status.gaps.length"
    gaps_before = page.evaluate(gaps)
    with MemoryWatch(container) as memory:
        with lab.connect() as connection:  # closed before the wait, which would starve its heartbeats
            channel = connection.channel()
            for body in [*forged_messages(now), *flood(now)]:
                channel.basic_publish("lab.events", "", body)
        # Read in order: once the page knows this worker, the dashboard has read the whole flood.
        # Sent until heard: the dashboard reads only so much a second, and drops the rest unread.
        waited = time.monotonic()
        marker = json.dumps([{"event": "attached", "worker": "after-flood", "prefetch": 1, "at": now}])
        if not heard_after(lab, page, marker, "window.labDashboard.live.workers.has('after-flood')", 240):
            pytest.fail(f"the page never heard the event after the flood; {flood_diagnosis(lab, page)}")
        print(f"the page heard the event after the flood {time.monotonic() - waited:.1f} s after it was sent")
        # The dashboard kept its broker through the flood (it once took slow figures for a lost node).
        assert page.evaluate(gaps) == gaps_before, flood_diagnosis(lab, page)
        expect(page.locator("#dropped")).to_contain_text("malformed events dropped")
        result = lab.send("3", "--dots", "1", "--wait", "--name", "dashboard-after-forgery")
        assert result.returncode == 0, result.stdout + result.stderr
        run, _done = lab.saved_run("dashboard-after-forgery")
        expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
        expect(bars(page, "done")).to_have_count(3)  # the page still draws what really happens
    screenshot(page, "after-forged-events")

    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, #boards script, #figures script").count() == 0
    dropped = int(page.locator("#dropped").inner_text().split()[0].replace(",", ""))
    assert dropped >= 9, dropped
    assert lab.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", container]).stdout == started
    print(
        f"dashboard memory during the forgery: at most {max(memory.samples):.1f} MiB over {len(memory.samples)} samples"
    )
    assert memory.samples and max(memory.samples) < FORGED_MEMORY_BOUND_MIB, memory.samples


def test_the_page_asks_for_events_again_after_a_request_nobody_answers_and_after_an_http_error(lab, browser):
    """A browser's EventSource waits for ever on a request nobody answers, and gives up for good
    on an HTTP error (here a 503, as a proxy in front of a restarting dashboard gives): the page
    makes a new one each time, and is live again."""
    page = browser.new_page()
    asked = []

    def hold_then_refuse(route):
        asked.append(route.request.url)
        if len(asked) == 2:
            route.fulfill(status=503, body="restarting")
        elif len(asked) > 2:
            route.continue_()  # the first is left unanswered

    page.route("**/events", hold_then_refuse)
    try:
        page.goto(f"http://127.0.0.1:{lab.dashboard_port}/")
        expect(page.locator("#connection")).to_have_text("reconnecting…")  # after the 503
        expect(page.locator("#connection")).to_have_attribute("data-state", "open")
        assert len(asked) == 3
        result = lab.send("2", "--dots", "0", "--wait", "--name", "dashboard-after-503")
        assert result.returncode == 0, result.stdout + result.stderr
        run, _done = lab.saved_run("dashboard-after-503")
        expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
    finally:
        page.close()


# Frames the page has drawn since it was opened (the test reads it twice: frames a second).
FRAME_COUNTER = """() => { window.framesDrawn = 0;
  const tick = () => { window.framesDrawn += 1; requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"""


def frames_a_second(page, seconds_between):
    """How many frames the page drew a second between now and `seconds_between` later (driven by send.sh)."""
    before, started = page.evaluate("window.framesDrawn"), time.monotonic()
    seconds_between()
    return (page.evaluate("window.framesDrawn") - before) / (time.monotonic() - started)


def test_an_event_that_claims_a_time_far_off_is_dropped_and_said_and_the_page_keeps_drawing(lab, page):
    """One schema-valid event with "started": 1 once gave the page an axis of 1.8e9 s and froze it."""
    page.evaluate(FRAME_COUNTER)
    now = time.time()
    far = {"event": "started", "worker": "consumer-1", "batch": "forged-time", "message_id": "forged-time.1",
           "task": "x", "redelivered": False, "started": 1, "at": now}  # fmt: skip
    publish_events(lab, [json.dumps([far]).encode()])
    expect(page.locator("#dropped")).to_contain_text("1 event dropped: their times were far from when they arrived")
    sending = send_in_background(lab, "3", "--dots", "1", "--name", "dashboard-after-far-time")
    rate = frames_a_second(page, lambda: finish(sending))
    print(f"the page drew {rate:.0f} frames a second after the event from far off")
    run, _done = lab.saved_run("dashboard-after-far-time")
    expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
    expect(bars(page, "done")).to_have_count(3)
    assert page.locator(f"{LIVE} svg .axis line").count() <= 14  # at most 12 ticks, the now-line
    assert rate >= 5, f"{rate:.1f} frames a second"


@pytest.mark.timeout(300)
def test_a_flood_of_forged_events_leaves_the_page_drawing_and_the_real_batch_shown(lab, page):
    """Forged schema-valid events by the hundred thousand (100,000 a second left every page at a
    frame a second), from thousands of made-up workers and batches: the page keeps drawing, its
    lanes stay few, and a real batch sent meanwhile is the one shown, drawn to its end."""
    page.evaluate(FRAME_COUNTER)
    now = time.time()

    def forged(n):
        worker = f"forged-{n % 5000}"
        return {"event": "started", "worker": worker, "batch": f"forged-{n % 300}", "message_id": f"forged.{n}",
                "task": "x", "redelivered": False, "started": now, "at": now}  # fmt: skip

    bodies = [json.dumps([forged(m * 1000 + n) for n in range(1000)]).encode() for m in range(150)]
    attached = [json.dumps([{"event": "attached", "worker": f"forged-lane-{m}-{n}", "prefetch": 1, "at": now}
                            for n in range(1000)]).encode() for m in range(10)]  # fmt: skip
    stop = threading.Event()

    def flood_for_a_while():
        while not stop.is_set():
            publish_events(lab, [*attached, *bodies])

    flooding = threading.Thread(target=flood_for_a_while, daemon=True)
    flooding.start()
    try:
        sending = send_in_background(lab, "6", "--dots", "1", "--name", "dashboard-during-flood")
        rate = frames_a_second(page, lambda: finish(sending))
    finally:
        stop.set()
        flooding.join(timeout=60)
    print(f"the page drew {rate:.0f} frames a second during the flood")
    run, _done = lab.saved_run("dashboard-during-flood")
    expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
    expect(page.locator(f"{LIVE} .summary")).to_contain_text(re.compile(r"^6 tasks done · makespan"))
    expect(page.locator("#dropped")).to_contain_text("not shown: more came than a page can draw")
    assert page.locator(f"{LIVE} svg .lane").count() <= 24
    screenshot(page, "during-flood")
    assert rate >= 5, f"{rate:.1f} frames a second"


@pytest.mark.parametrize(
    "name, summary",
    [
        ("rejected_first", "1 task done · makespan 1.5 s"),  # the page once said 2.0 s
        ("quick_done_twice", "2 tasks done · makespan 1.5 s"),  # the page once said 3 tasks
        ("quick_first", "2 tasks done · makespan 3.0 s"),  # the page once said 2.0 s
    ],
)
def test_a_replay_of_the_three_cases_once_told_otherwise_shows_the_terminals_figures(lab, page, name, summary):
    """Saved as a run saved before runs carried their figures: the dashboard computes them."""
    run = json.loads((ROOT / "tests" / "golden" / f"{name}.json").read_text())["run"]
    old = {key: value for key, value in run.items() if key not in ("figures", "segments")}
    lab.timelines.chmod(lab.timelines.stat().st_mode | 0o070)  # as send.sh leaves it: the dashboard reads it
    (lab.timelines / f"dashboard-{name}.json").write_text(json.dumps({**old, "name": f"dashboard-{name}"}))
    page.click("#show-replay")
    expect(page.locator("#run-a option", has_text=f"dashboard-{name}")).to_be_attached()
    replay_to_the_end(page, f"dashboard-{name}")
    expect(page.locator('[data-board="replay-1"] .summary')).to_contain_text(summary)


def test_during_a_named_batch_the_page_asks_for_nothing_that_is_not_there(lab, page):
    """It asked for the run's saved file every 2 s until send.sh saved it: a 404 each time."""
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    result = lab.send("4", "--dots", "2", "--wait", "--name", "dashboard-no-404")
    assert result.returncode == 0, result.stdout + result.stderr
    run, _done = lab.saved_run("dashboard-no-404")
    expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
    expect(page.locator(f"{LIVE} .summary")).to_contain_text(re.compile(r"^4 tasks done · makespan"))
    # The batch picker names the run (it listed batch ids alone).
    expect(page.locator("#live-batch option", has_text=f"run dashboard-no-404 (batch {run['batch']})")).to_have_count(1)
    assert failed == []
    # Picked, the board's heading and words say so (they said "the current batch" whatever was picked).
    expect(page.locator(f"{LIVE} h2")).to_have_text("Live: the current batch")
    page.select_option("#live-batch", run["batch"])
    expect(page.locator(f"{LIVE} h2")).to_have_text("Live: the batch you picked")
    expect(page.locator(f"{LIVE} svg")).to_have_attribute("aria-label", re.compile(r"^Live: the batch you picked"))
    page.select_option("#live-batch", "")
    expect(page.locator(f"{LIVE} h2")).to_have_text("Live: the current batch")


def test_two_overlapping_sends_show_the_batch_that_runs_not_the_newer_one_waiting(lab, page):
    """The newer batch, sent while the older ran and not yet started, was drawn as an empty board."""
    older = send_in_background(lab, "3", "--dots", "4", "--name", "dashboard-overlap-older")
    expect(bars(page, "running")).to_have_count(CONSUMERS)
    newer = send_in_background(lab, "3", "--dots", "1", "--name", "dashboard-overlap-newer")
    try:
        page.wait_for_function(  # the producer said it sends the newer batch
            "[...window.labDashboard.live.batches.values()].some(b => b.name === 'dashboard-overlap-newer')"
        )
        expect(page.locator("#batch-name")).to_contain_text("run dashboard-overlap-older")
        assert bars(page, "running").count() + bars(page, "done").count() >= CONSUMERS  # its bars, not an empty board
        expect(page.locator("#batch-name")).to_contain_text("run dashboard-overlap-newer", timeout=30_000)
    finally:
        finish(older)
        finish(newer)
    expect(page.locator(f"{LIVE} .summary")).to_contain_text(re.compile(r"^3 tasks done · makespan"))


def test_opened_on_an_idle_lab_the_page_draws_a_lane_per_worker_attached_before_the_dashboard(lab, browser):
    """The workers attached before the dashboard listened (it restarted, or started after them):
    the broker's events never named them, and the page drew fewer lanes than workers. A lane
    each now, named from what the stream lab.history kept of their attaching (within the hour
    the dashboard reads back at start); a lane `(not heard from)` for a consumer the broker
    counts that no event named (one attached before that hour). The stream keeps the broker's
    word on each consumer too: read back, it tells the real workers from the names this
    module's forged floods made up, which may not crowd them out."""
    lab.compose("restart", "dashboard")
    lab.wait_for(lambda: dashboard_answers(lab), "the dashboard answers again")
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    try:
        page.goto(f"http://127.0.0.1:{lab.dashboard_port}/")
        expect(page.locator("#connection")).to_have_attribute("data-state", "open")
        # Every worker has a lane, named. Not only they: the forged workers' "attached" events of
        # this module's earlier tests are in the hour read back too, as a page open then drew them.
        names = page.locator(f"{LIVE} svg .lane .lane-name")
        for worker in WORKERS:
            expect(names.filter(has_text=re.compile(rf"^{worker}$"))).to_have_count(1)
        assert names.count() <= 24
        assert_accessible(page, "the live page of an idle lab")
        result = lab.send(str(CONSUMERS), "--dots", "1", "--wait", "--name", "dashboard-idle-then-busy")
        assert result.returncode == 0, result.stdout + result.stderr
        run, _done = lab.saved_run("dashboard-idle-then-busy")
        expect(page.locator(f"{LIVE} svg")).to_have_attribute("data-batch", run["batch"])
        for worker in WORKERS:
            expect(names.filter(has_text=re.compile(rf"^{worker}$"))).to_have_count(1)
    finally:
        page.close()


def dashboard_answers(lab):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.dashboard_port}/healthz", timeout=2) as response:
            return json.loads(response.read()).get("broker") is True
    except (OSError, ValueError):
        return False


POOL = "#pool-chart"


def distinct_heights(page, series):
    """How many different heights the chart's lines of `series` reach: 1 for a flat line."""
    return page.evaluate(
        """series => new Set([...document.querySelectorAll(`#pool-chart polyline[data-series="${series}"]`)]
             .flatMap(line => line.getAttribute("points").split(" ").map(point => point.split(",")[1]))).size""",
        series,
    )


@pytest.mark.timeout(240)
def test_the_chart_above_the_lanes_shows_task_queue_and_the_workers_over_time_and_marks_each_scaling(lab, page):
    """scripts/autoscale.sh grows a pool of one under a batch and shrinks it back after; the chart
    draws task_queue's depth and the broker's count of workers from the dashboard's readings, and
    marks each of the autoscaler's scalings with its why; a forged scaling's why is shown as text."""
    forged_why = '<img src="x" onerror="window.forged = true"> up'
    forged = {"event": "scaled", "at": time.time(), "ready": 0, "unacked": 0, "recommended": 9, "before": 7,
              "workers": 9, "why": forged_why}  # fmt: skip
    publish_events(lab, [json.dumps([forged]).encode()])
    forged_mark = page.locator(f'{POOL} g.scaling[data-before="7"][data-workers="9"]')
    expect(forged_mark.locator("title")).to_have_text(f"7 → 9 workers: {forged_why}")
    assert page.locator(f"{POOL} img").count() == 0 and page.evaluate("window.forged") is None

    lab.compose("up", "--detach", "--wait", "--no-recreate", "--scale", "consumer=1")
    expect(page.locator("#consumers")).to_have_text("1")
    options = ("--min", "1", "--max", "4", "--per-worker", "2", "--every", "1", "--down-after", "10")
    with autoscaling(lab, *options) as autoscaler:
        autoscaler.wait_for_line("workers 1 -> 1")
        sending = send_in_background(lab, "8", "--dots", "4", "--name", "dashboard-autoscaled")
        autoscaler.wait_for_line("up at once")
        grown, why = re.search(r"workers 1 -> (\d+)  (.*)$", autoscaler.said("workers 1 -> ")[-1]).groups()
        scaled_up = page.locator(f'{POOL} g.scaling[data-before="1"][data-workers="{grown}"]')
        expect(scaled_up.locator("title")).to_have_text(f"1 → {grown} workers: {why}")
        expect(page.locator(f"{POOL} text.scaling-label").last).to_have_text(re.compile(r"^\d+ → \d+ workers?$"))
        # The broker's count of workers, read by the dashboard, as the chart says it; the lanes below grew too.
        expect(page.locator(POOL)).to_have_attribute(
            "aria-label", re.compile(r"ready, \S+ unacknowledged, [2-4] workers")
        )
        page.wait_for_function(f"document.querySelectorAll('{LIVE} svg .lane').length >= {grown}")
        screenshot(page, "pool-scaled-up")
        assert_accessible(page, "the live page with the chart of a pool scaled up")
        finish(sending)
        # The queue quiet for the window: the pool comes back to one, and that is marked too.
        autoscaler.wait_for_line("-> 1  down", timeout=60)
        shrunk, why = re.search(r"workers (\d+) -> 1  (.*)$", autoscaler.said("-> 1  down")[-1]).groups()
        scaled_down = page.locator(f'{POOL} g.scaling[data-before="{shrunk}"][data-workers="1"]')
        expect(scaled_down.locator("title")).to_have_text(f"{shrunk} → 1 worker: {why}")
        expect(scaled_down.locator("text.scaling-label")).to_have_text(f"{shrunk} → 1 worker")  # the newest
        page.locator("#pool").screenshot(path=ARTIFACTS / "dashboard-pool-chart.png")
    assert distinct_heights(page, "workers") >= 2, "the workers' line never rose"
    assert distinct_heights(page, "ready") >= 2, "task_queue's ready line never rose"
    expect(page.locator(f'{POOL} polyline[data-series="unacked"]').first).to_be_attached()
