"""The lab on a three-node cluster (compose.cluster.yaml): task_queue has a member on
every node, and a node killed or stopped mid-batch loses no task. Prints the figures."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from browser import CHROMIUM, chromium, on_top
from demos import ctrl_c, demo, forget_run, no_run_saved, output_until
from lab.topology import CONSUMERS_STREAM, HISTORY_STREAM
from stacklab import ROOT, Lab, completions

NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
TASKS = 30
CONFIRMED = r"Sent (\d+) tasks? to task_queue in .*, (each )?persistent and confirmed"
# A node killed or stopped, then waited for until back in sync: minutes each.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("cluster-timelines"))
    lab.env.update(
        COMPOSE_FILE="compose.yaml:compose.cluster.yaml",
        COMPOSE_PATH_SEPARATOR=":",
        COMPOSE_PROJECT_NAME=f"lab-cluster-test-{os.getpid()}",
        # Tasks of a second a dot, as a user runs the node-failure demo: the workers that lose
        # their node have time to come back. For the whole module: the brokers' consumer timeout
        # follows it, so a demo run with another value re-created all three nodes, and the next
        # test's `up` re-created them again.
        SECONDS_PER_DOT="1",
    )
    try:
        started = time.monotonic()
        lab.compose("up", "--detach", "--wait", "--scale", "consumer=3", timeout=600)
        print(f"\ncluster up in {time.monotonic() - started:.0f} s")
        yield lab
    finally:
        lab.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


class NoNodeAnswers(OSError):
    """No running node could run the command (all down, or still booting): wait_for retries."""


def members(lab):
    """{node: (raft state, commit index)} of task_queue's members, as the demos read them (labctl/cluster.py)."""
    code = "import json; from labctl import cluster; print(json.dumps(cluster.members()))"
    result = lab.run([sys.executable, "-c", code])
    if result.returncode != 0 or not (rows := json.loads(result.stdout or "[]")):
        raise NoNodeAnswers(result.stderr.strip()[:300] or "no node answers")
    return {node: (state, commit) for node, state, commit in rows}


def in_sync(lab):
    states = members(lab)
    return (
        sorted(states) == sorted(NODES)
        and sorted(state for state, _ in states.values()) == ["follower", "follower", "leader"]
        and len({commit for _, commit in states.values()}) == 1
    )


def leader(lab):
    return next((node for node, (state, _) in members(lab).items() if state == "leader"), None)


def wait_in_sync(lab, what):
    """Until task_queue's three members are in sync; read every 2 s, as each reading starts an
    Erlang VM in a node (a second or more of CPU) and the nodes catching up need that CPU."""
    lab.wait_for(lambda: in_sync(lab), what, timeout=120, interval=2)


def queued(lab):
    """Tasks in task_queue, the workers stopped (all of them ready): over AMQP, through the node
    with the host ports."""
    return lab.queue()[0]


def container(lab, node):
    return lab.compose("ps", "--all", "--quiet", node).stdout.strip()


def kill(lab, node):
    lab.run(["docker", "kill", "--signal", "KILL", container(lab, node)])
    lab.run(["docker", "wait", container(lab, node)])


@pytest.fixture
def healthy(cluster):
    """Every node up, task_queue with three members in sync, three workers consuming, nothing queued."""
    cluster.compose("up", "--detach", "--wait", "--scale", "consumer=3")
    wait_in_sync(cluster, "task_queue with three members in sync")
    # Over AMQP, through the node with the host ports: a rabbitmqctl call costs seconds of CPU.
    cluster.wait_for(lambda: cluster.queue()[1] == 3, "3 workers consuming")
    cluster.purge()
    return cluster


def figures(lab, name, out):
    run, _ = lab.saved_run(name)
    done = completions(run["events"])
    return {
        "sent": run["sent"],
        "confirmed": int(confirmed.group(1)) if (confirmed := re.search(CONFIRMED, out)) else 0,
        "done": len(done),
        "lost": run["sent"] - len(done),
        "done more than once": sum(len(events) > 1 for events in done.values()),
        "redelivered": sum(event["redelivered"] for events in done.values() for event in events),
    }


def report(capsys, what, numbers):
    with capsys.disabled():
        print(f"\n{what}\n  " + ", ".join(f"{name} {value}" for name, value in numbers.items()))


@pytest.fixture
def dashboard_page(healthy):
    """The dashboard's page open in a headless Chromium, live."""
    if not CHROMIUM and os.environ.get("CI") != "true":
        pytest.skip("needs Chromium: apt-get install chromium")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(f"http://127.0.0.1:{healthy.dashboard_port}/")
        expect(page.locator("#connection")).to_have_attribute("data-state", "open")
        yield page


def test_the_leader_killed_mid_batch_loses_nothing_and_rejoins(healthy, dashboard_page, capsys):
    started, since = time.monotonic(), healthy.now()
    result = healthy.script("demo-node-failure.sh", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    killed = result.stdout.split("==> Killed ", 1)[1].split()[0]
    new_leader = result.stdout.split("==> New leader of task_queue: ", 1)[1].split()[0]
    numbers = figures(healthy, "node-failure", result.stdout)
    run, _ = healthy.saved_run("node-failure")
    report(capsys, f"leader {killed} killed mid-batch, new leader {new_leader} ({time.monotonic() - started:.0f} s)",
           numbers)  # fmt: skip

    assert killed in NODES and new_leader in NODES and new_leader != killed
    assert numbers["confirmed"] == numbers["sent"] == numbers["done"] == TASKS and numbers["lost"] == 0
    assert [mark["label"] for mark in run["marks"]] == [f"killed {killed}"]
    killed_at = run["marks"][0]["at"]
    after = {event["worker"] for event in run["events"] if event["event"] == "done" and event["started"] > killed_at}
    workers = {f"consumer-{number}" for number in (1, 2, 3)}
    assert after == workers, f"every worker took tasks after the kill:\n{healthy.consumer_logs(since)[-3000:]}"
    assert "lost 0" in result.stdout and f"^ killed {killed}" in result.stdout
    # From the broker's connections: the workers that were on the killed node, and where they went.
    moved = result.stdout.split("==> Workers that moved to another node:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert moved == [f"  (none: no worker was connected to {killed})"] or all(
        re.fullmatch(rf"  consumer-\d connected to (?!{killed}$)rabbitmq(-\d)?", line) for line in moved
    ), moved
    healthy.wait_for(lambda: healthy.queue()[1] == 3, "every worker consuming again")
    assert in_sync(healthy), members(healthy)  # the demo waited for the killed node to catch up
    the_page_showed_it_all(dashboard_page, run, killed, capsys)
    dashboard_log = healthy.compose("logs", "--no-color", "dashboard", check=False).stdout
    report(capsys, "the dashboard", {"lost its own node": f"lost broker {killed} (" in dashboard_log,
           "read the stream on from an offset": "lab.history from offset" in dashboard_log})  # fmt: skip


def the_page_showed_it_all(page, run, killed, capsys):
    """The page open through the demo: the batch's every task done, the kill marked, live
    again, and no gap: had the dashboard's own node been killed, it read the stream on from
    where it stopped on another node (it once marked a gap and fell back on the saved run)."""
    live = '[data-board="live"]'
    expect(page.locator(f"{live} svg")).to_have_attribute("data-batch", run["batch"])
    expect(page.locator("#batch-name")).to_contain_text("run node-failure")
    expect(page.locator(f"{live} .summary")).to_contain_text(re.compile(rf"^{TASKS} tasks done · makespan"))
    expect(page.locator(f"{live} svg .fault-label")).to_have_text(f"killed {killed}")
    assert on_top(page, f"{live} svg .fault-label")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#connection")).to_have_text("live")
    gaps = page.evaluate("window.labDashboard.status.gaps")
    assert gaps == []
    expect(page.locator("#gaps")).to_be_hidden()
    expect(page.locator("#batch-name")).not_to_contain_text("events were missed")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=ROOT / "artifacts" / "dashboard-node-failure.png", full_page=True)
    report(capsys, "the page through the demo", {"gaps in its events": len(gaps),
           "drawn from the saved records": "saved records" in page.locator("#batch-name").inner_text()})  # fmt: skip


def test_a_follower_killed_mid_batch_loses_nothing(healthy, capsys):
    since = healthy.now()
    # rabbitmq first when it follows: the node with the host ports, where most clients are.
    follower = min((node for node, (state, _) in members(healthy).items() if state == "follower"), key=NODES.index)
    sending = subprocess.Popen(
        [str(ROOT / "scripts/send.sh"), str(TASKS), "--dots", "2", "--wait", "--timeout", "300", "--name", "follower"],
        cwd=ROOT, env=healthy.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    healthy.wait_for(lambda: sum(map(len, healthy.done(since).values())) >= 6, "six tasks done", timeout=120)
    kill(healthy, follower)
    out, err = sending.communicate(timeout=400)
    assert sending.returncode == 0, out[-2000:] + err[-2000:]
    numbers = figures(healthy, "follower", out)
    report(capsys, f"follower {follower} killed mid-batch", numbers)

    assert numbers["confirmed"] == numbers["done"] == TASKS and numbers["lost"] == 0
    healthy.compose("start", follower)
    wait_in_sync(healthy, f"{follower} back in sync")
    assert healthy.queue()[1] == 3


def test_the_whole_cluster_stopped_and_started_keeps_the_queued_tasks(healthy, capsys):
    healthy.compose("stop", "consumer")
    sent = healthy.send("40")
    assert sent.returncode == 0, sent.stderr
    healthy.compose("stop", "--timeout", "30")
    started = time.monotonic()
    healthy.compose("up", "--detach", "--wait", *NODES)
    wait_in_sync(healthy, "task_queue with three members in sync")
    kept = queued(healthy)
    report(capsys, f"whole cluster stopped and started ({time.monotonic() - started:.0f} s to be back)",
           {"queued": 40, "kept": kept})  # fmt: skip
    assert kept == 40


def test_two_nodes_down_the_queue_waits_for_a_majority_and_keeps_what_it_confirmed(healthy, capsys):
    healthy.compose("stop", "consumer")
    assert healthy.send("20").returncode == 0
    for node in ("rabbitmq-2", "rabbitmq-3"):
        kill(healthy, node)
    doctor = healthy.script("doctor.sh")
    assert doctor.returncode == 1
    assert "task_queue has no majority: 1 of 3 members up" in doctor.stdout, doctor.stdout
    sending = subprocess.Popen(
        [str(ROOT / "scripts/send.sh"), "10"], cwd=ROOT, env=healthy.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(10)
    waiting = sending.poll() is None  # unconfirmed, neither failed nor done
    healthy.compose("start", "rabbitmq-2")
    started = time.monotonic()
    out, err = sending.communicate(timeout=300)
    confirmed_after = time.monotonic() - started
    healthy.wait_for(lambda: queued(healthy) >= 30, "30 tasks in task_queue", timeout=60)
    kept = queued(healthy)
    healthy.compose("start", "rabbitmq-3")
    report(capsys, "two of three nodes down, then one back",
           {"confirmed before": 20, "sent while no majority": 10, "send waited": waiting,
            "confirmed after a node returned (s)": round(confirmed_after), "queued": kept})  # fmt: skip

    assert waiting
    assert sending.returncode == 0, out[-2000:] + err[-2000:]
    assert kept == 30
    wait_in_sync(healthy, "rabbitmq-3 back in sync")


def test_the_node_with_the_host_ports_killed_the_lab_works_on_and_doctor_names_it(healthy, capsys):
    kill(healthy, "rabbitmq")
    try:
        doctor = healthy.script("doctor.sh")
        sent = healthy.send("5", "--dots", "1", "--wait", "--name", "without-rabbitmq", timeout=240)
        run, done = healthy.saved_run("without-rabbitmq") if sent.returncode == 0 else ({}, {})
    finally:
        healthy.compose("start", "rabbitmq")
    report(capsys, "node rabbitmq killed, then send.sh 5 --wait", {"exit": sent.returncode, "done": len(done)})
    assert "rabbitmq (exited with code 137)" in doctor.stdout and "rabbitmq-2 rabbitmq-3 healthy" in doctor.stdout, (
        doctor.stdout
    )
    assert "task_queue has 2 of 3 members up, a majority" in doctor.stdout, doctor.stdout
    assert sent.returncode == 0, sent.stdout[-2000:] + sent.stderr[-2000:]
    assert sorted(done) == [1, 2, 3, 4, 5] and "lost 0" in sent.stdout


def test_every_node_runs_the_one_broker_image_the_lab_built(cluster):
    built = f"rabbitmq-lab/broker:{cluster.env['LAB_IMAGE_TAG']}"
    image = cluster.run(["docker", "image", "inspect", "--format", "{{.Id}}", built]).stdout.strip()
    inspect = ["docker", "inspect", "--format", "{{.Image}}"]
    running = {node: cluster.run([*inspect, container(cluster, node)]).stdout.strip() for node in NODES}
    assert image and running == dict.fromkeys(NODES, image)


def test_the_lab_streams_have_a_replica_on_every_node(healthy):
    listed = healthy.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "list_queues", "name", "type", "members",
                             "--formatter", "json", "--silent").stdout  # fmt: skip
    for name in (HISTORY_STREAM, CONSUMERS_STREAM):
        stream = next(queue for queue in json.loads(listed) if queue["name"] == name)
        assert stream["type"] == "stream"
        assert sorted(stream["members"]) == sorted(f"rabbit@{node}" for node in NODES), stream


def test_ctrl_c_after_the_node_failure_demo_killed_the_leader_starts_it_again(healthy):
    """Ctrl+C at the node-failure demo's wait after the kill (for a new leader, then the
    batch): nothing of the demo left within 10 s, the killed node started again, no run
    saved. Only there: the waits before it change nothing (tests/stack/test_demo_interrupted.py
    tries those on the crash demo), and each wait after a kill costs a node's resync."""
    forget_run(healthy, "node-failure")
    with demo(healthy, "demo-node-failure.sh") as process:
        killed = output_until(process, "==> Killed ").split("==> Killed ", 1)[1].split()[0]
        after = ctrl_c(healthy, process)
    assert f"==> Stopped early: starting {killed} again" in after, after
    assert no_run_saved(healthy, "node-failure")
    assert healthy.compose("ps", "--status", "running", "--quiet", killed).stdout.strip()
    wait_in_sync(healthy, f"{killed} back in sync")
    healthy.wait_for(lambda: healthy.queue()[1] == 3, "3 workers consuming")
