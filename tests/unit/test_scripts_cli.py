"""Every scripts/*.sh: --help prints its usage and a wrong argument is one line
on stderr, exit 2, both before the script acts: no docker (a fake that logs
every call, scripts_sandbox.py), no .venv, no file written."""

import contextlib
import socket
import subprocess
import sys

import pytest
from scripts_sandbox import ROOT, Sandbox

SCRIPTS = sorted(path.name for path in (ROOT / "scripts").glob("*.sh"))


@pytest.fixture
def sandbox(tmp_path):
    return Sandbox(tmp_path)


def assert_untouched(sandbox):
    assert sandbox.calls() == [], "the script acted"
    assert sandbox.files() == sandbox.files_before, "the script wrote files"


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_touches_nothing(sandbox, script, flag):
    result = sandbox.run(script, flag)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    for heading in ("Usage:", "Takes:", "Changes:"):
        assert heading in result.stdout
    assert "shellcheck" not in result.stdout and "set -euo" not in result.stdout
    assert_untouched(sandbox)


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("demo-crash.sh", "kills a\nworker"),
        ("demo-restart.sh", "restarts the\nbroker"),
        ("demo-node-failure.sh", "three-node cluster"),
        ("bench.sh", "runs, then removes, a stack of its own"),
        ("dead-letters.sh", "moves every dead letter"),
        ("check-worker.sh", "stops the lab's workers for the duration"),
    ],
)
def test_help_says_what_the_script_changes(sandbox, script, says):
    assert " ".join(says.split()) in " ".join(sandbox.run(script, "--help").stdout.split())


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_option_is_one_line_and_exit_2(sandbox, script):
    result = sandbox.run(script, "--bogus-option")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert_untouched(sandbox)


@pytest.mark.parametrize(
    "command",
    [
        ["bench.sh", "--clsuter"],
        ["bench.sh", "dashboard", "--cluster"],
        ["dead-letters.sh", "requeue", "now"],
        ["dead-letters.sh", "purge"],
        ["demo-round-robin.sh", "3", "4"],
        ["demo-fair-dispatch.sh", "--workers"],
        ["demo-crash.sh", "now"],
        ["doctor.sh", "--fix"],
        ["check-worker.sh", "--copies", "0", "--", "python", "worker.py"],
        ["check-worker.sh", "--copies"],
        ["check-worker.sh", "python", "worker.py"],
        ["check-worker.sh", "--"],
        ["send.sh", "6", "7"],
        ["send.sh", "--bogus"],
        ["test.sh", "-k", "dispatch"],
        ["test.sh", "tests/unit", "-x"],
    ],
    ids=" ".join,
)
def test_a_wrong_argument_is_refused_before_anything(sandbox, command):
    result = sandbox.run(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert_untouched(sandbox)


def test_help_is_help_wherever_it_stands(sandbox):
    result = sandbox.run("demo-round-robin.sh", "4", "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
    assert_untouched(sandbox)


def test_a_message_after_double_dash_may_look_like_help(sandbox):
    """send.sh -- --help sends the message "--help": it gets as far as looking for the lab."""
    result = sandbox.run("send.sh", "--", "--help")
    assert result.returncode == 1 and "the lab is not running" in result.stderr
    assert "Usage:" not in result.stdout


def test_ensure_venv_runs_pip_only_when_the_requirements_or_a_file_they_include_changed(sandbox):
    requirements = sandbox.lab / "tests/requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("-r ../producer/requirements.txt\npytest==9.2.0\n")
    included = sandbox.lab / "producer/requirements.txt"
    included.parent.mkdir()
    included.write_text("pika==1.3.2\n")
    (sandbox.lab / ".venv").unlink()  # the repo's own: not this test's to touch
    python = sandbox.lab / ".venv/bin/python"  # pip faked, logging its calls as the sandbox's docker does
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/usr/bin/env bash\n[[ "$1 $2" == "-m pip" ]] || exec {sys.executable} "$@"\n'
                      f'printf "%s\\n" "python $*" >>"{sandbox.path}/docker.log"\n')  # fmt: skip
    python.chmod(0o755)

    def ensure_venv(*requirements):
        result = subprocess.run(["bash", "-c", f"source scripts/lib.sh && ensure_venv {' '.join(requirements)}"],
                                cwd=sandbox.lab, env=sandbox.env, capture_output=True, text=True, timeout=20,
                                check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [call.split(" -r ")[1] for call in sandbox.calls() if "pip install" in call], result.stderr

    pips, said = ensure_venv()
    assert pips == ["tests/requirements.txt"]
    assert said == "Setting up .venv (pip install -r tests/requirements.txt): the first time takes up to a minute\n"
    assert ensure_venv() == (pips, "")  # nothing changed: no pip, not a word
    included.write_text("pika==1.4.4\n")  # a file it includes
    assert ensure_venv()[0] == ["tests/requirements.txt"] * 2
    # check-worker.sh's, the producer's alone: installed with the tests' already
    assert ensure_venv("producer/requirements.txt") == (pips * 2, "")
    included.write_text("pika==1.4.4\nrich==15.0.0\n")
    assert ensure_venv("producer/requirements.txt")[0][-1] == "producer/requirements.txt"
    assert len(ensure_venv("producer/requirements.txt")[0]) == 3  # once


def test_a_lab_never_started_is_said_so_even_when_compose_lists_no_ports(tmp_path):
    """docker compose ps answers for the broker (no container) but fails to list ports:
    send.sh still says why it stops, in one line."""
    sandbox = Sandbox(tmp_path, 'case "$*" in "compose ps --all "*) exit 0 ;; esac\n')
    with contextlib.ExitStack() as held:
        probes = [held.enter_context(socket.create_server(("127.0.0.1", 0))) for _ in range(3)]
        ports = [str(probe.getsockname()[1]) for probe in probes]  # three distinct ports, free once closed
    free = dict(zip(("AMQP_PORT", "MANAGEMENT_PORT", "DASHBOARD_PORT"), ports, strict=True))
    result = sandbox.run("send.sh", "6", **free)  # ports no program here holds: a lab of yours may hold .env's
    assert result.returncode == 1
    assert result.stderr.startswith("send.sh: the lab is not running; start it with") and result.stderr.count("\n") == 1


def test_a_lab_scaling_its_workers_is_still_seen_running(tmp_path):
    """docker compose ps fails when a container it listed is removed before it inspects it (the
    autoscaler scaling down while send.sh looks): asked again, it finds the broker (send.sh said
    "the lab is not running" of a running lab in a CI run)."""
    flaky_ps = """\
case "$*" in
  "compose ps --status running --services"*)
    [[ -f "$here/ps-failed" ]] || { touch "$here/ps-failed"; echo "Error: No such container: 0123abc" >&2; exit 1; }
    printf 'rabbitmq\\nconsumer\\n'; exit 0 ;;
esac
"""
    sandbox = Sandbox(tmp_path, flaky_ps)
    result = subprocess.run(["bash", "-c", "source scripts/lib.sh && lab_is_running"], cwd=sandbox.lab,
                            env=sandbox.env, capture_output=True, text=True, timeout=20)  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert sandbox.calls().count("compose ps --status running --services") == 2
