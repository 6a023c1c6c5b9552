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
    # here a stand-in under its name and the test's tag). An image of its own, as the real one is:
    # a second tag of the worker's image would have Compose remove one image twice at once, and
    # the daemon refuses the second ("unrecognized image ID", seen in a CI run).
    (tmp_path / "Dockerfile").write_text(f"FROM rabbitmq-lab/worker:{tag}\nLABEL lab.test=sandbox-node-stand-in\n")
    standin = ["docker", "build", "--quiet", "--tag", f"rabbitmq-lab/sandbox-node:{tag}", str(tmp_path)]
    assert lab.run(standin, timeout=300).returncode == 0
    assert len(lab.run(images).stdout.split()) == 5
    volumes = ["docker", "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]
    assert lab.run(volumes).stdout.split() == [f"{project}_rabbitmq-data"]

    lab.compose(*readme_command(r"--rmi all"))

    assert lab.run(images).stdout.split() == []
    assert lab.run(volumes).stdout.split() == []
    containers = ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]
    assert lab.run(containers).stdout.split() == []


def test_the_images_an_earlier_build_left_untagged_go_with_the_readmes_prune(tmp_path):
    """After `--build` on an updated lab, the image it replaced stays untagged (dangling) with the
    project's label; the README's prune command removes it (run on a project of its own)."""
    (command,) = re.findall(r"`(docker image prune [^`]+)`", (ROOT / "README.md").read_text())
    lab = Lab(tmp_path)
    project, tag = f"lab-test-{os.getpid()}-prune", f"rabbitmq-lab/worker:prune-{os.getpid()}"
    lab.compose("build", "consumer", timeout=600)
    base = f"rabbitmq-lab/worker:{lab.env['LAB_IMAGE_TAG']}"
    for version in ("1", "2"):  # the same tag built twice: the first build's image is left untagged
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nLABEL com.docker.compose.project={project} v={version}\n")
        assert lab.run(["docker", "build", "--quiet", "--tag", tag, str(tmp_path)], timeout=300).returncode == 0
    dangling = ["docker", "images", "--quiet", "--filter", "dangling=true", "--filter",
                f"label=com.docker.compose.project={project}"]  # fmt: skip
    assert len(lab.run(dangling).stdout.split()) == 1
    pruned = lab.run([*command.replace("=rabbitmq-lab", f"={project}").split(), "--force"])
    assert pruned.returncode == 0, pruned.stderr
    assert lab.run(dangling).stdout.split() == []
    lab.run(["docker", "image", "rm", tag])
