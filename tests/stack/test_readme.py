"""The README's first screen, run as a student runs it: every command of its "Run it"
section, in order, against the tests' stack (Compose's `up` detached, as a test cannot
sit in the foreground), and what the README says they print."""

import re

from stacklab import CONSUMERS, ROOT

README = (ROOT / "README.md").read_text()


def commands(section):
    """The `$ ` lines of the console blocks in the README's section, comments dropped."""
    text = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", text, re.DOTALL)
    return [line[2:].split("  #", 1)[0].strip() for block in blocks for line in block.splitlines() if line[:2] == "$ "]


def as_a_test_runs_it(command):
    """The command, but never in the foreground: `up` detached, `logs` without --follow."""
    if command.startswith("docker compose up") and "--detach" not in command:
        return command.replace("docker compose up", "docker compose up --detach --wait", 1)
    return command.replace("logs --follow", "logs")


def test_the_readme_first_screen_runs_as_written(lab):
    run_it = commands("Run it")
    assert run_it[:2] == ["docker compose up --scale consumer=3", "scripts/send.sh 6"], run_it
    since, sent = lab.now(), []
    for command in map(as_a_test_runs_it, run_it):
        result = lab.run(["bash", "-c", command], timeout=300)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        if command == "scripts/send.sh 6":
            assert " [x] Sent Task 1.\n" in result.stdout and "Sent 6 tasks to task_queue" in result.stdout
            sent = re.findall(r"^ \[x\] Sent (.*)$", result.stdout, re.M)
    assert len(sent) == 6, sent

    def workers_on_the_six():
        """{worker: the six tasks it did}: a task of the test before (purged, but already
        taken by a worker) may be done meanwhile too, and is left out."""
        done = {worker: [task for task in tasks if task in sent] for worker, tasks in lab.done(since).items()}
        return {worker: tasks for worker, tasks in done.items() if tasks}

    lab.wait_for(
        lambda: {t for tasks in workers_on_the_six().values() for t in tasks} == set(sent), "the six tasks done"
    )
    workers = workers_on_the_six()
    assert len(workers) == CONSUMERS and all(worker.startswith("consumer-") for worker in workers)
    assert "[x] Received 'Task 1.'" in lab.consumer_logs(since)
