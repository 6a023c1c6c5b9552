"""A clone checked out with Windows line endings (core.autocrlf=true, Git for
Windows' default) keeps its scripts LF, thanks to .gitattributes, and runs the lab."""

import os
import subprocess

import pytest

from stacklab import ROOT, Lab

SHELL_SCRIPTS = ["scripts/*.sh", "rabbitmq/start-broker.sh"]


def git(*args, cwd=ROOT):
    """git ARGS with core.autocrlf=true, as Git for Windows runs by default."""
    command = ["git", "-c", "core.autocrlf=true", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def checkout_with_autocrlf(destination, attributes=None):
    """Clone the committed HEAD into DESTINATION (ATTRIBUTES overriding .gitattributes): its shell scripts with a CR."""
    git("clone", "-q", "--no-checkout", str(ROOT), str(destination))
    if attributes:
        (destination / ".git" / "info" / "attributes").write_text(attributes)
    git("checkout", "-q", git("rev-parse", "HEAD"), cwd=destination)
    scripts = [path for pattern in SHELL_SCRIPTS for path in sorted(destination.glob(pattern))]
    assert len(scripts) > 5
    return [str(path.relative_to(destination)) for path in scripts if b"\r" in path.read_bytes()]


def test_core_autocrlf_would_write_crlf_here_without_gitattributes(tmp_path):
    # `!text !eol` in info/attributes undoes .gitattributes: what a clone gets without it.
    assert "scripts/send.sh" in checkout_with_autocrlf(tmp_path / "without", attributes="* !text !eol\n")


@pytest.mark.timeout(900)
def test_a_clone_with_autocrlf_keeps_lf_and_runs_the_lab(tmp_path):
    clone = tmp_path / "lab"
    assert checkout_with_autocrlf(clone) == []
    lab = Lab(tmp_path / "timelines", root=clone)
    # Images of its own, built from the clone's files.
    lab.env.update(COMPOSE_PROJECT_NAME=f"lab-eol-{os.getpid()}", LAB_IMAGE_TAG=f"eol-{os.getpid()}")
    try:
        lab.compose("up", "--detach", "--build", "--wait", "--scale", "consumer=1", timeout=600)
        lab.wait_for(lambda: lab.queue()[1] == 1, "the worker attached")
        since = lab.now()
        sent = lab.send("2", timeout=180)
        assert sent.returncode == 0, sent.stderr
        lab.wait_for(lambda: len(lab.done(since).get("consumer-1", [])) == 2, "2 tasks done", timeout=30)
        assert lab.done(since) == {"consumer-1": ["Task 1.", "Task 2."]}
    finally:
        lab.compose("down", "--volumes", "--rmi", "all", "--timeout", "5", check=False)
