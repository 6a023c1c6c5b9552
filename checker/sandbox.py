"""Students' code run in throwaway containers (check-worker.sh --class, or --container):
each copy of the worker in a container of its own, the student's folder mounted
read-only, CPU, memory and process count bounded, no capability, not root, and the
broker its only network peer: the containers share the network of a forwarding
container (forward.py) that sits on a network of its own, internal, with the broker
alone on it, and passes localhost:5672 on to the broker. A worker connects to
localhost:5672 as the tutorials' do, whatever port the lab publishes.

The image is the lab's worker image (Python and pika, as the lab's workers run them)."""

import json
import os
import subprocess
from pathlib import Path

FORWARD = Path(__file__).with_name("forward.py")
LIMITS = ["--cpus", "1", "--memory", "256m", "--pids-limit", "128"]
# The caller's user, who can read the students' folders; the image's own (10001) if that is root.
USER = "10001" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
             "--user", USER]  # fmt: skip
AMQP = "5672"


def docker(*args, timeout=120):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise SandboxError(f"docker {args[0]} {args[1] if len(args) > 1 else ''} failed: {result.stderr.strip()[:300]}")
    return result.stdout.strip()


class SandboxError(Exception):
    """The sandbox could not be set up (one line)."""


def lab_image_and_broker():
    """(the lab's worker image, the broker's container id), from docker compose."""
    config = json.loads(subprocess.run(["docker", "compose", "config", "--format", "json"], capture_output=True,
                                       text=True, timeout=60, check=True).stdout)  # fmt: skip
    broker = subprocess.run(["docker", "compose", "ps", "--quiet", "rabbitmq"], capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()  # fmt: skip
    if not broker:
        raise SandboxError("the lab's broker container is not running")
    return config["services"]["consumer"]["image"], broker[0]


class Sandbox:
    """The network, the forwarder; then a `docker run` command line per copy."""

    def __init__(self, name):
        self.name = name  # of the network and the containers (check-worker-<batch>)
        self.image, self.broker = lab_image_and_broker()
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
        except SandboxError:
            self.__exit__()
            raise
        return self

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

    def library_version(self):
        """The client library the copies use, as the image has it."""
        return "pika " + docker("run", "--rm", "--entrypoint", "python", self.image, "-c",
                                "import pika; print(pika.__version__)")  # fmt: skip
