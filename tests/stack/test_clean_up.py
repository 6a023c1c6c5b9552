"""The README's "remove everything" removes everything the lab made: its containers,
its volume and its images (about 1.6 GB), run on a project and image tag of its own."""

import os
import re

from stacklab import ROOT, Lab


def readme_command(pattern):
    """The README's `docker compose ...` command whose text matches PATTERN, as arguments."""
    commands = re.findall(r"^\$ (docker compose [^#\n]*?)\s*(?:#.*)?$", (ROOT / "README.md").read_text(), re.M)
    matching = [command for command in commands if re.search(pattern, command)]
    assert len(matching) == 1, commands
    return matching[0].split()[2:]


def test_remove_everything_removes_the_containers_the_volume_and_the_images(tmp_path):
    lab = Lab(tmp_path)
    project, tag = f"lab-test-{os.getpid()}-clean", f"clean-{os.getpid()}"
    lab.env.update(COMPOSE_PROJECT_NAME=project, LAB_IMAGE_TAG=tag)
    lab.compose("build", timeout=600)  # the run's build, cached: each image under this test's tag
    lab.compose("create", "--scale", "consumer=2")
    images = ["docker", "images", "--quiet", "--filter", f"reference=rabbitmq-lab/*:{tag}"]
    assert len(lab.run(images).stdout.split()) == 4  # broker, worker, dashboard, producer
    # check-worker.sh's Node image once a check ran Node workers in containers (built on demand:
    # here a stand-in under its name and the test's tag).
    lab.run(["docker", "tag", f"rabbitmq-lab/worker:{tag}", f"rabbitmq-lab/sandbox-node:{tag}"])
    assert len(lab.run(images).stdout.split()) == 5
    volumes = ["docker", "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]
    assert lab.run(volumes).stdout.split() == [f"{project}_rabbitmq-data"]

    lab.compose(*readme_command(r"--rmi all"))

    assert lab.run(images).stdout.split() == []
    assert lab.run(volumes).stdout.split() == []
    containers = ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]
    assert lab.run(containers).stdout.split() == []
