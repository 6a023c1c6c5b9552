"""The benchmark stands apart from the tests: bench/bench.py imports with only what
scripts/bench.sh puts on its path (bench/, producer/ and the repo root), nothing
from tests/; and its raw pika loops are not in the producer's image."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_imports_nothing_from_tests():
    env = {**os.environ, "PYTHONPATH": "bench:producer:."}
    code = "import bench, sys; print(sorted(str(getattr(m, '__file__', '')) for m in sys.modules.values()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "bench/bench.py" in result.stdout and "/tests/" not in result.stdout


def test_the_raw_pika_loops_are_not_in_the_producer_image():
    assert not (ROOT / "producer" / "benchmark.py").exists()
    dockerfile = (ROOT / "producer" / "Dockerfile").read_text()
    assert "bench" not in dockerfile and "!bench" not in (ROOT / ".dockerignore").read_text()
