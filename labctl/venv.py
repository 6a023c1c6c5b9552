"""The .venv the host's programs run in (scripts/lib.sh's ensure_venv): made if missing,
and pip run only when a requirements file, or one it includes with -r, changed since pip
last ran for it. The standard library only: it runs before .venv has anything.

Usage: python -m labctl.venv [REQUIREMENTS]   (default tests/requirements.txt, from the repo root)
"""

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
INSTALLED = VENV / "installed"  # the text pip last installed, per requirements file


def with_includes(requirements):
    """REQUIREMENTS (a path from the repo root) and the files it includes with -r, in turn."""
    files = [requirements]
    for line in (ROOT / requirements).read_text().splitlines():
        if line.startswith("-r"):
            included = (ROOT / requirements).parent / line[2:].strip()
            files += with_includes(included.resolve().relative_to(ROOT).as_posix())
    return files


def text_of(requirements):
    """What pip would install for REQUIREMENTS: its text and that of the files it includes."""
    return "".join((ROOT / file).read_text() for file in with_includes(requirements))


def stamp(requirements):
    return INSTALLED / requirements.replace("/", "_")


def ensure(requirements):
    if not (VENV / "bin" / "python").exists():
        venv.create(VENV, with_pip=True)
    if stamp(requirements).exists() and stamp(requirements).read_text() == text_of(requirements):
        return
    print(f"Setting up .venv (pip install -r {requirements}): the first time takes up to a minute", file=sys.stderr)
    subprocess.run([VENV / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", requirements], cwd=ROOT, check=True)  # fmt: skip
    INSTALLED.mkdir(exist_ok=True)
    for file in with_includes(requirements):  # what it includes is installed too
        stamp(file).write_text(text_of(file))


if __name__ == "__main__":
    ensure(sys.argv[1] if len(sys.argv) > 1 else "tests/requirements.txt")
