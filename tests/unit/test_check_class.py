"""check-worker.sh --class without a broker: the options refused before anything (no docker,
no .venv), the file a command names, students' names as cells and file names, the
reports (CSV, JUnit, Markdown, manifest) and the exit status from the verdicts, the
progress lines, and each copy's container as sandbox.py starts it: its image chosen by
the worker's program, the Node one built once when first needed (docker faked)."""

import csv
import json
import re
from xml.etree import ElementTree

import pytest
import yaml
from scripts_sandbox import ROOT, Sandbox

from checker import classroom, sandbox
from checker.__main__ import main as check_one


@pytest.fixture
def scripts(tmp_path):
    return Sandbox(tmp_path)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--name", "../x", "--", "python", "worker.py"],
        ["--name", "a" * 65, "--", "python", "worker.py"],
        ["--name", "tab\there", "--", "python", "worker.py"],
        ["--copies", "9", "--", "python", "worker.py"],
        ["--class"],
        ["--class", "no-such-folder", "--", "python", "worker.py"],
        ["--out", "report", "--", "python", "worker.py"],
        ["--on-host", "--", "python", "worker.py"],
    ],
    ids=" ".join,
)
def test_a_wrong_option_is_one_line_exit_2_before_anything(scripts, arguments):
    result = scripts.run("check-worker.sh", *arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert scripts.calls() == [] and scripts.files() == scripts.files_before


def test_producer_and_name_are_for_one_workers_check(scripts, tmp_path):
    (tmp_path / "lab" / "students").mkdir()
    result = scripts.run("check-worker.sh", "--class", "students", "--name", "x", "--", "python", "worker.py")
    assert result.returncode == 2 and "--name is for one worker's check, not with --class" in result.stderr


@pytest.mark.parametrize(
    ("command", "file"),
    [
        (["python", "worker.py"], "worker.py"),
        (["python", "-u", "worker.py"], "worker.py"),
        (["node", "worker.js"], "worker.js"),
        (["go", "run", "worker.go"], "worker.go"),
        (["./worker"], "./worker"),
        (["java", "Worker"], None),  # names no file: no folder is reported missing
    ],
)
def test_the_file_a_command_names(command, file):
    assert classroom.named_file(command) == file


def test_a_students_name_is_a_plain_cell_and_file_name(tmp_path):
    assert classroom.student_name(tmp_path / "Ann Smith") == "Ann_Smith"
    assert classroom.student_name(tmp_path / "=HYPERLINK(x)") == "HYPERLINK_x_"  # no spreadsheet formula
    assert classroom.student_name(tmp_path / "--") == "student"


def verdict(number, status, seen="seen", fix=""):
    return {"number": number, "title": f"check {number}", "status": status, "seen": seen, "fix": fix}


PASSED = {n: verdict(n, "PASS") for n in "1234"}
FAILED = {**PASSED, "3": verdict("3", "FAIL", "copy-1 held 3 tasks <while> another held none", "prefetch 1")}


@pytest.fixture
def class_run(tmp_path, monkeypatch):
    """A class of three: ann passes, bob fails check 3, cy has no worker.py; the checks faked."""
    folder = tmp_path / "class"
    for name in ("ann", "bob", "cy"):
        (folder / name).mkdir(parents=True)
    (folder / "ann" / "worker.py").write_text("print('ann')\n")
    (folder / "bob" / "worker.py").write_text("print('bob')\n")
    ran = []

    def check_one(student, out, _args):
        ran.append(student.name)
        out.mkdir(parents=True)
        return (PASSED if student.name == "ann" else FAILED), 0

    monkeypatch.setattr(classroom, "check_one", check_one)
    monkeypatch.setattr(classroom, "library_version", lambda _on_host: "pika 1.4.4 in the test")
    return folder, tmp_path / "report", ran


def test_a_class_run_writes_every_report_and_fails_when_a_student_fails(class_run, capsys):
    folder, out, ran = class_run
    status = classroom.main(["--class", str(folder), "--out", str(out), "--quick", "--", "python", "worker.py"])
    assert status == 1
    assert ran == ["ann", "bob"]  # cy's check is not run: reported missing
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split(" —")[0] for line in progress] == [
        "[1/3] ann: 1:PASS 2:PASS 3:PASS 4:PASS",
        "[2/3] bob: 1:PASS 2:PASS 3:FAIL 4:PASS",
        "[3/3] cy: 1:SKIP 2:SKIP 3:SKIP 4:SKIP",
    ]
    assert re.search(r"\(\d+ s; about \d+ s left\)$", progress[0]), progress[0]
    with (out / "results.csv").open() as file:
        assert list(csv.reader(file)) == [
            ["student", "check 1", "check 2", "check 3", "check 4", "result"],
            ["ann", "PASS", "PASS", "PASS", "PASS", "passed"],
            ["bob", "PASS", "PASS", "FAIL", "PASS", "not passed: 3"],
            ["cy", "SKIP", "SKIP", "SKIP", "SKIP", "missing worker.py"],
        ]
    suites = ElementTree.parse(out / "junit.xml").getroot()
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("ann", "4", "0"), ("bob", "4", "1"), ("cy", "4", "4"),
    ]  # fmt: skip
    (failure,) = suites[1].iter("failure")
    assert failure.text == "copy-1 held 3 tasks <while> another held none\nFix: prefetch 1"  # escaped, read back
    assert "missing: no worker.py in the folder" in next(suites[2].iter("failure")).text
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# check-worker: 1 of 3 students passed")
    assert "- **bob**, 3 (FAIL): copy-1 held 3 tasks <while> another held none. Fix: prefetch 1" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["client_library"] == "pika 1.4.4 in the test" and manifest["command"] == ["python", "worker.py"]
    assert set(manifest["students"]["ann"]["files"]) == {"worker.py"}
    assert len(manifest["students"]["ann"]["files"]["worker.py"]) == 64


def test_a_class_where_everyone_passes_exits_0(class_run, monkeypatch):
    folder, out, _ran = class_run
    monkeypatch.setattr(classroom, "check_one", lambda _student, _out, _args: (PASSED, 0))
    (folder / "cy" / "worker.py").write_text("print('cy')\n")
    assert classroom.main(["--class", str(folder), "--out", str(out), "--quick", "--", "python", "worker.py"]) == 0


def test_each_copy_runs_bounded_read_only_not_root_with_the_broker_its_only_peer(tmp_path):
    box = sandbox.Sandbox.__new__(sandbox.Sandbox)  # no docker: only the command line it builds
    box.name, box.image, box.forwarder = "check-worker-abc", "rabbitmq-lab/worker:latest", "f0rward"
    command = box.command("check-worker-abc-copy-1", tmp_path, ["python", "worker.py"])
    text = " ".join(command)
    assert command[:4] == ["docker", "run", "--rm", "--init"]
    assert "--network container:f0rward" in text  # the forwarder's network: the internal one, the broker alone
    assert f"--volume {tmp_path}:/student:ro" in text and "--read-only" in text
    assert "--cpus 1 --memory 256m --pids-limit 128" in text and "--cap-drop ALL" in text
    user = command[command.index("--user") + 1]
    assert user.split(":")[0] != "0"
    assert command[command.index("--entrypoint") + 1 :] == ["python", "rabbitmq-lab/worker:latest", "worker.py"]


def test_the_copies_start_once_the_forwarder_listens_and_a_forwarder_that_never_does_is_one_error(monkeypatch):
    # A copy started before it connected to nothing: the tutorial's worker, which does not try
    # again, ended, and a correct worker was failed (seen in a loaded CI run).
    said = {"logs": ["", "", "forwarding\n"]}
    calls = []

    def fake_docker(*args, timeout=120):
        calls.append(args[0])
        if args[0] == "logs":
            return said["logs"].pop(0) if said["logs"] else ""
        return "f0rward" if args[0] == "run" else ""

    monkeypatch.setattr(sandbox, "docker", fake_docker)
    monkeypatch.setattr(sandbox.subprocess, "run", lambda *a, **k: None)  # the clean-up's docker calls
    box = sandbox.Sandbox.__new__(sandbox.Sandbox)
    box.name, box.image, box.broker, box.forwarder = "check-worker-abc", "rabbitmq-lab/worker:latest", "b", None
    assert box.__enter__() is box and calls == ["network", "network", "run", "logs", "logs", "logs"]
    monkeypatch.setattr(sandbox, "FORWARDER_SECONDS", 0.3)
    with pytest.raises(sandbox.SandboxError, match="forwarder to the broker did not start within 0.3 s"):
        box.__enter__()


@pytest.mark.parametrize(
    ("command", "service"),
    [
        (["python", "worker.py"], "consumer"),
        (["python3", "-u", "worker.py"], "consumer"),
        (["/usr/bin/python3.13", "worker.py"], "consumer"),
        (["node", "worker.js"], "sandbox-node"),
        (["nodejs", "worker.js"], "sandbox-node"),
    ],
)
def test_the_image_is_chosen_by_the_workers_program(command, service):
    assert sandbox.runtime(command)[0] == service


@pytest.mark.parametrize("program", ["./worker", "go", "java", "bash", "dotnet", "pythonic"])
def test_a_program_no_image_runs_is_refused_with_what_to_do_instead(program):
    with pytest.raises(sandbox.NoRuntime) as refused:
        sandbox.runtime([program, "worker"])
    assert f"not '{program.removeprefix('./')}'" in str(refused.value) and "--on-host" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_each_runtimes_service_is_in_compose_yaml_and_the_node_one_is_left_out_of_up():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {service for service, _version in sandbox.RUNTIMES.values()} == {"consumer", "sandbox-node"}
    assert services["sandbox-node"]["profiles"] == [sandbox.PROFILE]
    assert "profiles" not in services["consumer"]  # the lab's worker image: there whenever the lab runs


IMAGES = {"consumer": "lab/worker:t", "sandbox-node": "lab/node:t"}  # the compose services' images


class FakeDocker:
    """docker for sandbox.py: compose config with IMAGES; which of them exist; the calls."""

    def __init__(self, existing):
        self.existing, self.calls = set(existing), []

    def __call__(self, *args, timeout=120):
        self.calls.append(" ".join(args))
        if args[-3:] == ("config", "--format", "json"):
            return json.dumps(
                {"services": {"consumer": {"image": "lab/worker:t"}, "sandbox-node": {"image": "lab/node:t"}}}
            )
        if args[-2] == "build":
            self.existing.add(IMAGES[args[-1]])
            return ""
        raise AssertionError(f"unexpected docker {args}")

    def image_exists(self, image):
        self.calls.append(f"image inspect {image}")
        return image in self.existing


@pytest.fixture
def docker(monkeypatch):
    def install(*existing):
        fake = FakeDocker(existing)
        monkeypatch.setattr(sandbox, "docker", fake)
        monkeypatch.setattr(sandbox, "image_exists", fake.image_exists)
        return fake

    return install


def test_the_node_image_is_built_once_when_a_node_worker_first_needs_it(docker, capsys):
    fake = docker("lab/worker:t")
    assert sandbox.main(["node", "worker.js"]) == 0
    builds = [call for call in fake.calls if "build" in call]
    assert builds == ["compose --profile check-worker build sandbox-node"]
    assert "==> Building lab/node:t for the check's containers, once: the first build takes" in capsys.readouterr().out
    assert sandbox.prepare(["node", "worker.js"]) == "lab/node:t"  # there now: not built again
    assert [call for call in fake.calls if "build" in call] == builds


def test_a_python_worker_runs_in_the_lab_worker_image_with_no_build(docker, capsys):
    fake = docker("lab/worker:t")
    assert sandbox.prepare(["python", "worker.py"]) == "lab/worker:t"
    assert not [call for call in fake.calls if "build" in call] and capsys.readouterr().out == ""


def test_a_runtime_with_no_image_is_one_line_exit_2_before_any_docker_call(docker, capsys):
    fake = docker("lab/worker:t", "lab/node:t")
    assert sandbox.main(["./worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("check-worker.sh: the check's containers run python or node, not 'worker'")
    assert len(err.splitlines()) == 1 and fake.calls == []


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["python", "worker.py"], 0),
        (["python3", "-u", "worker.py"], 0),
        (["python", "nosuch.py"], 2),
        (["node", "worker.js"], 2),
        (["./worker"], 2),
        (["java", "-cp", ".:amqp-client.jar", "Worker"], 0),  # another program's arguments are its own
        (["python", "-m", "worker"], 0),
    ],
)
def test_one_workers_check_refuses_a_script_that_is_not_there_before_anything(tmp_path, capsys, command, status):
    # It stopped the lab's workers, then failed check 1 with the fix for another mistake.
    (tmp_path / "worker.py").write_text("import pika\n")
    assert check_one(["--refuse-if-missing", str(tmp_path), "--", *command]) == status
    err = capsys.readouterr().err
    assert (err == "") == (status == 0)
    if status:
        assert err.startswith(f"check-worker.sh: no {command[-1]} in {tmp_path} (the command runs there)")
        assert err.count("\n") == 1
