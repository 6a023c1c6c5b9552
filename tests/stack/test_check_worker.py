"""scripts/check-worker.sh against students' workers and the real broker, run from a
student's folder (tmp_path) beside the test stack: only what needs a real broker and
real processes (the checks' verdicts on each mistake are unit tests, against a
simulated broker: tests/unit/test_checker.py). RabbitMQ tutorial two's worker.py,
worker.js (in a class run's Node containers), worker.go and Worker.java (the last two as
the copies of one check), as published, pass; a declaration the broker refuses and an
acknowledgement before the work fail the check they should; a class of three students
(one passing, one whose auto_ack=True with basic_ack left in the broker refuses, one
without a worker.py) is graded in containers, with its reports; a second run refuses
while one runs; after any run, passed, failed or interrupted, the lab has its workers
attached, task_queue holds none of the check's tasks and no process of the check runs.
"""

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from lab import schema
from stacklab import CLIENTS, CONSUMERS, readline_within, runtime_missing

ACK = "    ch.basic_ack(delivery_tag=method.delivery_tag)\n"
RECEIVED = '    print(f" [x] Received {body.decode()}")\n'
DECLARE = 'channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})'
CONSUME = "on_message_callback=callback)"
# Debian's librabbitmq-client-java and the SLF4J it depends on: the class path the tutorial's README gives Worker.java.
JAVA_CLASS_PATH = ":".join(f"/usr/share/java/{jar}.jar" for jar in ("amqp-client", "slf4j-api", "slf4j-simple"))


def variant(name, tmp_path):
    """tutorial_worker.py as written, or broken the way a student might: its path."""
    worker = (CLIENTS / "tutorial_worker.py").read_text()
    for part in (ACK, RECEIVED, DECLARE, CONSUME):
        assert part in worker  # the tutorial's worker still reads as these variants expect
    broken = {
        "tutorial": worker,
        # The commonest way to write auto-ack: the broker refuses the basic_ack and closes the channel.
        "auto_ack_and_ack": worker.replace(CONSUME, "on_message_callback=callback, auto_ack=True)"),
        "ack_first": worker.replace(ACK, "").replace(RECEIVED, RECEIVED + ACK),
        "not_durable": worker.replace(DECLARE, 'channel.queue_declare(queue="task_queue")'),
    }[name]
    path = tmp_path / f"{name}.py"
    path.write_text(broken)
    return path


def check_worker(lab, folder, *args, env=None, timeout=280):
    """scripts/check-worker.sh ARGS, run from the student's folder."""
    return subprocess.run(
        [str(lab.root / "scripts/check-worker.sh"), *args], cwd=folder, env={**lab.env, **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def verdicts(output):
    """{check number: its verdict line}."""
    lines = [line for line in output.splitlines() if line[:4] in ("PASS", "FAIL", "WARN", "SKIP")]
    return {line.split()[1].rstrip("."): line for line in lines}


def processes_of(folder, root):
    """Processes still running in `folder` (the copies run where the student stands), or
    whose command line names it, or the check's orchestrator run from this lab's `root`
    (not another clone's, on a shared machine)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(folder) or str(folder) in cmdline or ("-m checker" in cmdline and cwd == str(root)):
            found.append(cmdline)
    return found


def assert_lab_restored(lab, folder):
    lab.wait_for(lambda: lab.queue()[1] == CONSUMERS, f"the lab's {CONSUMERS} workers attached again", timeout=30)
    assert len(lab.compose("ps", "--status", "running", "--quiet", "consumer").stdout.split()) == CONSUMERS
    assert lab.queue()[0] == 0  # none of the check's tasks left
    assert processes_of(folder, lab.root) == []


@pytest.mark.timeout(400)
def test_the_tutorials_python_worker_passes_and_its_run_is_saved(lab, tmp_path):
    worker = variant("tutorial", tmp_path)
    producer = f"{sys.executable} {CLIENTS / 'tutorial_new_task.py'}"
    result = check_worker(
        lab, tmp_path, "--producer", producer, "--name", "tutorial", "--", sys.executable, worker.name
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = verdicts(result.stdout)
    assert [seen[n][:4] for n in "1234"] == ["PASS"] * 4, result.stdout
    assert "copy-1 took" in seen["1"] and "copy-2 took" in seen["1"]
    assert "was killed holding 'Check 2 task 1....' (known from the broker)" in seen["2"]
    assert "the task went back to task_queue and copy-" in seen["2"]
    assert "prefetch 1" in seen["3"] and "none held behind another while a copy idled" in seen["3"]
    assert "durable (quorum)" in seen["4"] and "'Hello World!' is persistent (delivery_mode 2)" in seen["4"]
    assert seen["5b"].startswith("PASS") and "went back to task_queue" in seen["5b"]  # no handler: handed back
    assert seen["5a"].startswith("WARN") and "CONNECTION_FORCED" in seen["5a"]  # the tutorial does not reconnect
    assert "Summary: 4 of 4 required checks passed" in result.stdout
    assert "follow them with: docker compose logs --follow consumer" in result.stdout
    run = json.loads((lab.timelines / "tutorial.json").read_text())
    assert [problem for record in run["events"] if (problem := schema.problem(record, event=False))] == []
    assert {"copy-1", "copy-2", "copy-3"} <= {record["worker"] for record in run["events"]}
    assert any(mark["label"].startswith("killed copy-") for mark in run["marks"])
    assert any(record["redelivered"] and record["event"] == "done" for record in run["events"])
    assert (lab.timelines / "tutorial.png").stat().st_size > 0
    assert_lab_restored(lab, tmp_path)


@pytest.mark.timeout(600)
def test_the_tutorials_javascript_worker_passes_in_a_class_runs_node_containers(lab, tmp_path):
    """worker.js in the check's Node image (built the first time a check needs it); a program
    the containers cannot run is refused before anything."""
    students = tmp_path / "class"
    (students / "dan").mkdir(parents=True)
    shutil.copy(CLIENTS / "worker.js", students / "dan")
    for path in [students, *students.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the containers' user is not the folder's owner here
    refused = check_worker(lab, tmp_path, "--class", "class", "--", "./worker")
    assert refused.returncode == 2 and refused.stdout == "", refused.stdout + refused.stderr
    assert "containers run python or node, not 'worker'" in refused.stderr.splitlines()[-1], refused.stderr
    assert lab.queue()[1] == CONSUMERS and not (tmp_path / "check-worker-report").exists()  # nothing done
    result = check_worker(lab, tmp_path, "--class", "class", "--out", "report", "--quick", "--", "node", "worker.js",
                          timeout=500)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> Building rabbitmq-lab/sandbox-node:" in result.stdout  # this test run's tag: not there before
    with (tmp_path / "report/results.csv").open() as file:
        rows = [[row["student"], *(row[f"check {n}"] for n in "1234"), row["result"]] for row in csv.DictReader(file)]
    assert rows == [["dan", "PASS", "PASS", "PASS", "PASS", "passed"]], result.stdout
    manifest = json.loads((tmp_path / "report/manifest.json").read_text())
    assert manifest["client_library"].startswith("amqplib 0.10.9 in rabbitmq-lab/sandbox-node:"), manifest
    output = (tmp_path / "report/students/dan/output.txt").read_text()
    assert "Each copy runs in a container of its own (rabbitmq-lab/sandbox-node:" in output
    batch = json.loads((tmp_path / "report/students/dan/run.json").read_text())["batch"]  # this run's own
    assert lab.run(["docker", "ps", "--all", "--quiet", "--filter", f"name=check-worker-{batch}"]).stdout == ""
    assert_lab_restored(lab, students / "dan")


def go_worker(folder):
    """worker.go built in `folder` with Debian's amqp091-go: the command that runs it."""
    if not shutil.which("go"):
        runtime_missing("go not installed (Debian: golang-go): the Go tutorial worker is not tried")
    shutil.copy(CLIENTS / "worker.go", folder)
    build = subprocess.run(
        ["go", "build", "-o", "worker", "worker.go"], cwd=folder, capture_output=True, text=True, timeout=120,
        env={**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": str(folder / "cache")},
        check=False,
    )  # fmt: skip
    if build.returncode != 0:
        runtime_missing(f"worker.go does not build here (amqp091-go, Debian's golang-github-rabbitmq-amqp091-go-dev, "
                        f"is expected in /usr/share/gocode): {build.stderr.strip()[:200]}")  # fmt: skip
    return "./worker"


def java_worker(folder):
    """Worker.java compiled in `folder` as the tutorial's README says (javac, with the client on
    the class path), against Debian's RabbitMQ Java client: the command that runs it (java, with
    the client and SLF4J on the class path)."""
    if not (shutil.which("javac") and all(Path(jar).is_file() for jar in JAVA_CLASS_PATH.split(":"))):
        runtime_missing(f"javac or {JAVA_CLASS_PATH} missing (Debian: a JDK and librabbitmq-client-java): "
                        "the Java tutorial worker is not tried")  # fmt: skip
    shutil.copy(CLIENTS / "Worker.java", folder)
    subprocess.run(["javac", "-cp", JAVA_CLASS_PATH, "Worker.java"], cwd=folder, check=True, timeout=120)
    return f"java -cp .:{JAVA_CLASS_PATH} Worker"


# The copies' command when they are workers of different languages, one copy of each: a copy runs
# the first worker (a command line an argument) whose copy is not running (the one check 2 killed,
# when a copy starts in its place), and leaves its pid in worker_N.pid.
ONE_OF_EACH = """
import os, shlex, sys
for number, worker in enumerate(sys.argv[1:], start=1):
    try:
        os.kill(int(open(f"worker_{number}.pid").read()), 0)
    except (OSError, ValueError):
        open(f"worker_{number}.pid", "w").write(str(os.getpid()))
        command = shlex.split(worker)
        os.execvp(command[0], command)
sys.exit("every worker has a copy running")
"""


@pytest.mark.timeout(400)
def test_the_tutorials_go_and_java_workers_pass_as_the_two_copies_of_one_check(lab, tmp_path):
    """worker.go (worded its own way: "Received a message: ..." and "Done", through log, with a time
    stamp) is copy-1, Worker.java copy-2: each takes and finishes tasks (check 1), one is killed
    holding check 2's task and the other does it, and checks 3 and 4 run on one copy of each
    again. One run for both: a check-worker.sh run is among the suite's longest tests."""
    workers = [go_worker(tmp_path), java_worker(tmp_path)]
    (tmp_path / "one_of_each.py").write_text(ONE_OF_EACH)
    result = check_worker(lab, tmp_path, "--quick", "--", sys.executable, "one_of_each.py", *workers)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = verdicts(result.stdout)
    assert [line[:4] for line in seen.values()] == ["PASS"] * 4, result.stdout
    assert "copy-1 took" in seen["1"] and "copy-2 took" in seen["1"]  # the Go worker and the Java one
    assert "the task went back to task_queue and copy-" in seen["2"]
    assert (tmp_path / "worker_1.pid").is_file() and (tmp_path / "worker_2.pid").is_file()
    assert_lab_restored(lab, tmp_path)


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    ("name", "case"),
    [
        # Check 3 also fails when its samples catch a task held behind the long one (the verdict's
        # logic is a unit test): not asserted here.
        ("ack_first", ("PF.P", "acknowledged on receipt, before the work", "acknowledge manually")),
        ("not_durable", ("SSSF", "PRECONDITION_FAILED - inequivalent arg 'durable'", "declare the queue")),
    ],
)
def test_a_broken_worker_fails_the_check_it_should_with_the_fix(lab, tmp_path, name, case):
    expected, says, fix = case  # checks 1-4 (a pattern), words the failing check says, words of its fix
    worker = variant(name, tmp_path)
    result = check_worker(lab, tmp_path, "--quick", "--", sys.executable, worker.name)
    assert result.returncode == 1, result.stdout + result.stderr
    seen = verdicts(result.stdout)
    assert sorted(seen) == ["1", "2", "3", "4"], result.stdout
    assert re.fullmatch(expected, "".join(seen[n][0] for n in "1234")), result.stdout
    failing = seen[str(expected.index("F") + 1)]
    assert says in failing and f"Fix: {fix}" in failing, failing
    assert_lab_restored(lab, tmp_path)


@pytest.mark.timeout(300)
def test_a_second_run_refuses_and_ctrl_c_twice_ends_every_copy_and_brings_the_workers_back(lab, tmp_path):
    worker = variant("tutorial", tmp_path)
    check = subprocess.Popen(
        [str(lab.root / "scripts/check-worker.sh"), "--quick", "--", sys.executable, worker.name], cwd=tmp_path,
        env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        while not (line := readline_within(check.stdout, 120)).startswith("PASS  1."):
            assert line, check.stderr.read()
        assert len(processes_of(tmp_path, lab.root)) >= 2  # the copies run
        second = check_worker(lab, tmp_path, "--quick", "--", sys.executable, worker.name, timeout=60)
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr.startswith("check-worker.sh: another check-worker.sh is running"), second.stderr
        assert lab.queue()[1] < CONSUMERS  # the first run's check goes on: the lab's workers still stopped
        os.killpg(check.pid, signal.SIGINT)  # Ctrl+C: the terminal signals the foreground group
        while not (line := readline_within(check.stdout, 120)).startswith("==> Starting the lab's"):
            assert line, check.stderr.read()
        time.sleep(1)  # docker compose up under way
        os.killpg(check.pid, signal.SIGINT)  # a second Ctrl+C, while the workers are being started again
        out, err = check.communicate(timeout=120)
    finally:
        if check.poll() is None:
            os.killpg(check.pid, signal.SIGKILL)
            check.wait()
    assert check.returncode == 130, out + err
    assert "stopped by SIGINT; ending the copies" in err
    assert "They run in the background now" in out  # the start was not cut short
    assert_lab_restored(lab, tmp_path)


@pytest.mark.timeout(500)
def test_a_class_run_grades_each_student_in_containers_and_writes_the_reports(lab, tmp_path):
    students = tmp_path / "class"
    for name, worker in (("alice", "tutorial"), ("bob", "auto_ack_and_ack")):
        (students / name).mkdir(parents=True)
        variant(worker, tmp_path).rename(students / name / "worker.py")
    (students / "carol").mkdir()
    (students / "carol" / "notes.txt").write_text("worker to come")
    for path in [students, *students.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the containers' user is not the folder's owner here
    result = check_worker(lab, tmp_path, "--class", "class", "--out", "report", "--quick", "--", "python", "worker.py")
    assert result.returncode == 1, result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in progress] == ["[1/3] alice", "[2/3] bob", "[3/3] carol"], result.stdout
    assert all(re.search(r"about \d+ (s|min) left\)$", line) for line in progress), progress
    report = tmp_path / "report"
    with (report / "results.csv").open() as file:
        rows = [[row["student"], *(row[f"check {n}"] for n in "1234"), row["result"]] for row in csv.DictReader(file)]
    assert rows == [
        ["alice", "PASS", "PASS", "PASS", "PASS", "passed"],
        ["bob", "FAIL", "SKIP", "SKIP", "PASS", "not passed: 1, 2, 3"],
        ["carol", "SKIP", "SKIP", "SKIP", "SKIP", "missing worker.py"],
    ], result.stdout
    suites = ElementTree.parse(report / "junit.xml").getroot()
    assert [suite.get("name") for suite in suites] == ["alice", "bob", "carol"]
    assert [len(suite.findall("testcase")) for suite in suites] == [4, 4, 4]
    (failure,) = suites[1].findall("testcase")[0].findall("failure")
    assert "unknown delivery tag" in failure.text and "Fix: with auto_ack=True" in failure.text
    assert suites[0].get("failures") == "0" and suites[2].get("failures") == "4"
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["client_library"].startswith("pika 1.") and manifest["in_containers"] is True
    alice = (students / "alice" / "worker.py").read_bytes()
    assert manifest["students"]["alice"]["files"] == {"worker.py": hashlib.sha256(alice).hexdigest()}
    assert re.fullmatch(r"[0-9a-f]{40}( with uncommitted changes)?", manifest["lab_commit"])
    assert "| alice | PASS | PASS | PASS | PASS | passed |" in (report / "summary.md").read_text()
    assert (report / "students/alice/run.json").is_file() and (report / "students/alice/run.png").is_file()
    assert "Each copy runs in a container of its own" in (report / "students/alice/output.txt").read_text()
    batches = [json.loads(run.read_text())["batch"] for run in sorted(report.glob("students/*/run.json"))]
    assert len(batches) == 2, batches  # alice's and bob's checks (carol has no worker)
    for batch in batches:  # their containers and networks (check-worker-BATCH), not another check's on this machine
        assert lab.run(["docker", "ps", "--all", "--quiet", "--filter", f"name=check-worker-{batch}"]).stdout == ""
        assert lab.run(["docker", "network", "ls", "--quiet", "--filter", f"name=check-worker-{batch}"]).stdout == ""
    assert_lab_restored(lab, tmp_path)


def test_it_refuses_to_start_while_task_queue_holds_tasks(lab, tmp_path):
    lab.compose("stop", "consumer")
    lab.publish([("students-own.1", b"My own task.")])
    result = check_worker(lab, tmp_path, "--", sys.executable, "worker.py")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("check-worker.sh: task_queue holds 1 task(s)"), result.stderr
    assert lab.queue()[0] == 1  # left alone
    assert processes_of(tmp_path, lab.root) == []
