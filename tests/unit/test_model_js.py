"""The dashboard's JavaScript tests (tests/js, run by `node --test`) pass: the page's model
computes what lab/figures.py computes (golden files) and keeps every batch."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="needs Node.js 20 or later (node --test)")
def test_node_tests_pass():
    files = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests in tests/js"
    result = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
