"""Every tracked text file has LF line endings, and .gitattributes keeps it so on every platform."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_IN_A_CONTAINER_OR_SHELL = [
    ".env",
    "compose.yaml",
    "scripts/send.sh",
    "rabbitmq/start-broker.sh",
    "rabbitmq/Dockerfile",
    "rabbitmq/20-lab.conf",
    "consumer/worker.py",
    "producer/requirements.txt",
]


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout


def test_no_tracked_text_file_has_a_carriage_return():
    tracked = [ROOT / name for name in git("ls-files", "-z").decode().split("\0") if name]
    assert len(tracked) > 20
    texts = [path for path in tracked if path.is_file() and b"\0" not in path.read_bytes()]
    with_cr = [str(path.relative_to(ROOT)) for path in texts if b"\r" in path.read_bytes()]
    assert with_cr == []


def test_gitattributes_checks_out_lf_whatever_core_autocrlf_says():
    attributes = git("check-attr", "text", "eol", "--", *RUN_IN_A_CONTAINER_OR_SHELL).decode().splitlines()
    assert sorted(attributes) == sorted(
        f"{name}: {attribute}: {value}"
        for name in RUN_IN_A_CONTAINER_OR_SHELL
        for attribute, value in (("text", "auto"), ("eol", "lf"))
    )
