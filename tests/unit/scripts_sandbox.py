"""The lab's scripts run in a copy of the repo's scripts/, labctl/, lab/ and .env under
a temporary folder, with a fake `docker` first on PATH: no engine is touched. The
host-side programs (labctl/) run in the repo's own .venv, with a fake pika first on
their path (fakes/pika: a broker whose events a test writes, $FAKE_EVENTS).

The fake logs every call (one line each, in docker.log) and, unless a test's
`behaviour` says otherwise, fails like an engine that does not answer. The
commands a script could act with besides docker (python3 for the .venv, a
browser opener) are faked the same way, so a test sees every attempt to act.
"""

import json
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

from sessions import end_session

ROOT = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent / "fakes"
FAKED = ["docker", "python3", "xdg-open", "open", "wslview", "curl"]

# `docker compose run --name NAME ...` runs "the container" as a process whose
# pid it notes in containers/NAME (written whole, then renamed), `docker rm --force NAME` and `docker kill
# --signal S NAME` end it: what the scripts need of a producer container.
FAKE_DOCKER = """\
#!/usr/bin/env bash
here="{here}"
printf '%s\\n' "$*" >>"$here/docker.log"
name=""
previous=""
for arg; do
  [[ -n "$name" || "$previous" != --name ]] || name="$arg"  # the first: docker's, not the program's
  previous="$arg"
done
case "$*" in
  "compose run "*)
    # Noted whole or not at all (a `rm --force` must never read a half-written pid), unless
    # the test says this container is never created ($FAKE_NEVER_CREATED).
    if [[ -n "$name" && -z "${{FAKE_NEVER_CREATED:-}}" ]]; then
      echo "$$" >"$here/containers/$name.new" && mv "$here/containers/$name.new" "$here/containers/$name"
    fi
    exec sleep 300 ;;
  "rm --force "* | "kill --signal "*)
    container="$here/containers/${{@: -1}}"
    if [[ -f "$container" ]]; then
      if [[ "$1" == rm ]]; then signal=KILL; else signal="$3"; fi
      kill -s "$signal" "$(cat "$container")" 2>/dev/null
      [[ "$1" != rm ]] || rm -f "$container"
      exit 0
    fi ;;
esac
{behaviour}
echo "Cannot connect to the Docker daemon (a fake docker: $*)" >&2
exit 1
"""

OTHER = """\
#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >>"{here}/docker.log"
exit 1
"""

# A lab whose `up` works and whose broker and workers run, but whose workers
# say nothing (no event): a demo waits for its first task to arrive.
RUNNING_LAB = """\
case "$*" in
  "compose up "* | "compose start "* | "compose restart "*) exit 0 ;;
  "compose ps --status running --quiet"*) echo 0123abc; exit 0 ;;
  "compose ps --status running --services"*) printf 'rabbitmq\nconsumer\n'; exit 0 ;;
  "compose ps "*) exit 0 ;;
  "compose exec "*) exit 0 ;;
esac
"""


class Sandbox:
    def __init__(self, path, behaviour=""):
        self.path = path
        self.lab = path / "lab"
        self.bin = path / "bin"
        for folder in ("scripts", "labctl", "lab"):
            shutil.copytree(ROOT / folder, self.lab / folder, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / ".env", self.lab / ".env")
        (self.lab / ".venv").symlink_to(ROOT / ".venv")
        self.events = path / "events.jsonl"
        (path / "containers").mkdir()
        self.bin.mkdir()
        self.fake("docker", FAKE_DOCKER.format(here=path, behaviour=textwrap.dedent(behaviour)))
        for name in FAKED[1:]:
            self.fake(name, OTHER.format(here=path))
        self.files_before = self.files()

    def fake(self, name, text):
        (self.bin / name).write_text(text)
        (self.bin / name).chmod(0o755)

    @property
    def env(self):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
        env["PATH"] = f"{self.bin}:{env['PATH']}"
        env["COMPOSE_PROJECT_NAME"] = "sandbox"
        env.update(PYTHONPATH=str(FAKES), PYTHONDONTWRITEBYTECODE="1", FAKE_EVENTS=str(self.events))
        env["PYTHONFAULTHANDLER"] = "1"  # a program that hangs and is aborted says where it was
        return env

    def tell(self, *events):
        """Events the fake broker's queue holds from now on, one message each."""
        with self.events.open("a") as file:
            file.writelines(json.dumps([event]) + "\n" for event in events)

    def run(self, script, *args, timeout=20, **env):
        """The script to its end (or killed, with all it started, after TIMEOUT s: the test fails)."""
        process = self.start(script, *args, **env)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_session(process.pid)
            process.kill()
            process.communicate()
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def start(self, script, *args, **env):
        """The script in a session of its own (its pid is the session's id), as from a terminal."""
        return subprocess.Popen(
            [str(self.lab / "scripts" / script), *args], cwd=self.lab, env={**self.env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip

    def calls(self):
        log = self.path / "docker.log"
        return log.read_text().splitlines() if log.exists() else []

    def wait_for_call(self, start, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(call.startswith(start) for call in self.calls()):
                return
            time.sleep(0.1)
        raise AssertionError(f"no call {start!r} within {timeout} s: {self.calls()}")

    def files(self):
        return sorted(str(path.relative_to(self.lab)) for path in self.lab.rglob("*"))
