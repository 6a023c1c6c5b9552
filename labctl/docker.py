"""docker and docker compose as the host programs call them. Stop is how a program
ends on something it cannot go on from: one line on stderr and an exit status."""

import re
import subprocess
import sys

DOCTOR = "scripts/doctor.sh tells what is wrong"
# Compose's per-container progress lines, unless they report an error.
PROGRESS = re.compile(r"Bake|^ *Container")
TROUBLE = re.compile(r"[Ee]rror|unhealthy|[Ee]xited")


class Stop(Exception):  # noqa: N818 (it is not an error of the program's)
    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def output(*args, env=None):
    """What `docker ARGS` prints on stdout, or "" when it fails."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, env=env)
    return result.stdout if result.returncode == 0 else ""


def docker(*args):
    """`docker ARGS`, quietly; whether it succeeded."""
    return subprocess.run(["docker", *args], capture_output=True).returncode == 0


def compose_quietly(*args, env=None, out=sys.stdout):
    """docker compose ARGS, without its per-container progress lines; its exit status."""
    process = subprocess.Popen(["docker", "compose", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)  # fmt: skip
    for line in process.stdout:
        if not PROGRESS.search(line) or TROUBLE.search(line):
            print(line, end="", file=out, flush=True)
    return process.wait()


def compose_or_stop(*args, env=None):
    if compose_quietly(*args, env=env) != 0:
        raise Stop(f"docker compose {args[0]} failed (its error is above); {DOCTOR} and the fix")
