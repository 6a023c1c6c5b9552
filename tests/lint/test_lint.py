"""The repo's code passes its linters (installed from tests/requirements.txt)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
YAMLLINT_RULES = "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"


def files(pattern):
    return sorted(str(path.relative_to(ROOT)) for path in ROOT.glob(pattern))


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["shellcheck", *files("scripts/*.sh"), "rabbitmq/start-broker.sh", ".ci/run"],
        ["hadolint", "--failure-threshold", "warning", *files("*/Dockerfile"), "checker/node/Dockerfile"],
        [
            "yamllint",
            "--strict",
            "-d",
            YAMLLINT_RULES,
            "compose.yaml",
            "compose.cluster.yaml",
        ],
    ],
    ids=lambda command: command[0] + (" " + command[1] if command[0] == "ruff" else ""),
)
def test_linter_passes(command):
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
