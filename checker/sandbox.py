"""Students' code run in throwaway containers (check-worker.sh --class, or --container):
each copy of the worker in a container of its own, the student's folder mounted
read-only, CPU, memory and process count bounded, no capability, not root, and the
broker its only network peer: the containers share the network of a forwarding
container (forward.py) that sits on a network of its own, internal, with the broker
alone on it, and passes localhost:5672 on to the broker. A worker connects to
localhost:5672 as the tutorials' do, whatever port the lab publishes.

The image is chosen by the worker's program: the lab's worker image (Python and pika, as
the lab's workers run them) for python, the sandbox-node service's (Node.js and amqplib,
checker/node/) for node, built the first time a check needs it; any other is refused.

python -m checker.sandbox COMMAND...: the image for COMMAND there (built if need be), or
exit status 2 with why: check-worker.sh runs it before it changes anything."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .forward import READY

FORWARD = Path(__file__).with_name("forward.py")
LIMITS = ["--cpus", "1", "--memory", "256m", "--pids-limit", "128"]
# The caller's user, who can read the students' folders; the image's own (10001) if that is root.
USER = "10001" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
             "--user", USER]  # fmt: skip
AMQP = "5672"
FORWARDER_SECONDS = 30
PROFILE = "check-worker"  # compose.yaml's profile of sandbox-node: `docker compose up` leaves it out
# A program (python3.13 and nodejs too) → the compose service whose image runs it, and the
# command there that prints its client library's version.
RUNTIMES = {
    "python": ("consumer", ["python", "-c", "import pika; print('pika', pika.__version__)"]),
    "node": ("sandbox-node", ["node", "-e", "console.log('amqplib', require('amqplib/package.json').version)"]),
}


def docker(*args, timeout=120):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise SandboxError(f"docker {' '.join(args)[:100]} failed: {' '.join(result.stderr.split())[-300:]}")
    return result.stdout.strip()


class SandboxError(Exception):
    """The sandbox could not be set up (one line)."""


class NoRuntime(SandboxError):
    """No image of the sandbox runs the worker's program."""


def runtime(command):
    """The entry of RUNTIMES that runs `command`; NoRuntime, with what to do instead, for none."""
    program = Path(command[0]).name
    name = re.sub(r"(js|[0-9.]+)$", "", program)
    if name not in RUNTIMES:
        raise NoRuntime(
            f"the check's containers run python or node, not {program[:40]!r}: run it on this machine instead "
            "(--on-host with --class; without --container for one worker)"
        )
    return RUNTIMES[name]


def image_for(command):
    """(the compose service, its image) that runs `command`, from docker compose."""
    service, _version = runtime(command)
    config = json.loads(docker("compose", "--profile", PROFILE, "config", "--format", "json", timeout=60))
    return service, config["services"][service]["image"]


def prepare(command):
    """The image that runs `command`, built when it is not there yet (the Node one, the
    first time)."""
    service, image = image_for(command)
    if not image_exists(image):
        print(f"==> Building {image} for the check's containers, once: the first build takes about a minute",
              flush=True)  # fmt: skip
        docker("compose", "--profile", PROFILE, "build", service, timeout=900)
    return image


def image_exists(image):
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60).returncode == 0


def client_library(command):
    """The client library, and its version, the containers give `command`."""
    _service, image = image_for(command)
    program, *args = runtime(command)[1]
    version = subprocess.run(["docker", "run", "--rm", "--entrypoint", program, image, *args], capture_output=True,
                             text=True, timeout=120, check=False).stdout.strip()  # fmt: skip
    return f"{version[:80] or 'an unknown client library'} in {image}"


def broker_container():
    broker = docker("compose", "ps", "--quiet", "rabbitmq", timeout=60).split()
    if not broker:
        raise SandboxError("the lab's broker container is not running")
    return broker[0]


class Sandbox:
    """The network, the forwarder; then a `docker run` command line per copy."""

    def __init__(self, name, command):
        self.name = name  # of the network and the containers (check-worker-<batch>)
        self.image, self.broker = prepare(command), broker_container()
        self.forwarder = None

    def __enter__(self):
        docker("network", "create", "--internal", self.name)
        try:
            docker("network", "connect", "--alias", "broker", self.name, self.broker)
            self.forwarder = docker(
                "run", "--detach", "--rm", "--name", f"{self.name}-forward", "--network", self.name, *LIMITS,
                *HARDENING, "--volume", f"{FORWARD}:/forward.py:ro", "--entrypoint", "python", self.image,
                "/forward.py", AMQP, "broker",
            )  # fmt: skip
            self.wait_for_forwarder()
        except SandboxError:
            self.__exit__()
            raise
        return self

    def wait_for_forwarder(self):
        """Until the forwarder listens: a copy started before connected to nothing, and a
        tutorial's worker, which does not try again, ended (seen under load)."""
        deadline = time.monotonic() + FORWARDER_SECONDS
        while READY not in docker("logs", self.forwarder):
            if time.monotonic() > deadline:
                raise SandboxError(f"the check's forwarder to the broker did not start within {FORWARDER_SECONDS} s")
            time.sleep(0.1)

    def __exit__(self, *_exc):
        for args in (
            ["rm", "--force", f"{self.name}-forward"],
            ["network", "disconnect", "--force", self.name, self.broker],
            ["network", "rm", self.name],
        ):
            subprocess.run(["docker", *args], capture_output=True, timeout=60, check=False)

    def command(self, container, folder, command):
        """`docker run` for one copy of `command`, in `folder` (read-only)."""
        return [
            "docker", "run", "--rm", "--init", "--name", container, "--network", f"container:{self.forwarder}",
            *LIMITS, *HARDENING, "--env", "PYTHONUNBUFFERED=1", "--env", f"AMQP_PORT={AMQP}", "--env", "HOME=/tmp",
            "--volume", f"{Path(folder).resolve()}:/student:ro", "--workdir", "/student", "--entrypoint", command[0],
            self.image, *command[1:],
        ]  # fmt: skip


def main(command):
    try:
        prepare(command)
    except NoRuntime as exc:
        print(f"check-worker.sh: {exc}", file=sys.stderr)
        return 2
    except (SandboxError, OSError, subprocess.SubprocessError) as exc:
        print(f"check-worker.sh: cannot prepare the image the copies run in: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
