"""The broker refuses to publish its ports beyond this machine with the guest login.

Each case runs the broker alone in a compose project of its own, so the main
test stack is untouched."""

import os

import pika
import pytest

from stacklab import Lab

REFUSAL = "start-broker.sh: refusing to start: LAB_BIND_ADDRESS=0.0.0.0 publishes the broker beyond this machine"


@pytest.fixture
def broker_alone(tmp_path):
    """A Lab whose compose commands act on a project of its own; removed at the end."""
    lab = Lab(tmp_path)
    # No build: the session's (conftest.py) is tagged for the run; Compose labels an image with
    # the project that built it, so a build here made another image under the run's tag.
    lab.env["COMPOSE_PROJECT_NAME"] = f"lab-test-{os.getpid()}-bind"
    try:
        yield lab
    finally:
        lab.compose("down", "--volumes", "--rmi", "local", "--timeout", "5", check=False)


@pytest.mark.parametrize(
    "login",
    [("guest", "guest"), ("guest", "a-password-of-mine"), ("student", "guest")],
    ids=["guest/guest", "guest-user", "guest-password"],
)
@pytest.mark.timeout(420)
def test_guest_login_on_a_non_loopback_address_is_refused_with_one_line(broker_alone, login):
    user, password = login
    env = {"LAB_BIND_ADDRESS": "0.0.0.0", "RABBITMQ_DEFAULT_USER": user, "RABBITMQ_DEFAULT_PASS": password}
    result = broker_alone.compose(
        "--progress", "quiet", "run", "--rm", "--no-deps", "rabbitmq", check=False, env=env, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # compose adds an empty line
    assert len(lines) == 1 and lines[0].startswith(REFUSAL), result.stderr
    assert "set RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS in .env" in result.stderr
    assert "a-password-of-mine" not in result.stderr


@pytest.mark.timeout(420)
def test_a_login_of_your_own_on_a_non_loopback_address_starts(broker_alone):
    env = {"LAB_BIND_ADDRESS": "0.0.0.0", "RABBITMQ_DEFAULT_USER": "student", "RABBITMQ_DEFAULT_PASS": "s3cret-of-mine"}
    broker_alone.compose("up", "--detach", "--wait", "--no-deps", "rabbitmq", env=env, timeout=300)
    assert broker_alone.compose("port", "rabbitmq", "5672", env=env).stdout.strip().startswith("0.0.0.0:")
    credentials = pika.PlainCredentials("student", "s3cret-of-mine")
    parameters = pika.ConnectionParameters("127.0.0.1", broker_alone.amqp_port, credentials=credentials)
    with pika.BlockingConnection(parameters) as connection:
        assert connection.is_open


@pytest.mark.timeout(420)
def test_beyond_loopback_a_volume_that_keeps_the_guest_user_refuses_to_run(broker_alone):
    """.env's login changed, but the broker's volume keeps the users of its first start."""
    broker_alone.compose("up", "--detach", "--wait", "--no-deps", "rabbitmq", timeout=300)  # guest, on loopback
    broker_alone.compose("stop", "rabbitmq")
    env = {"LAB_BIND_ADDRESS": "0.0.0.0", "RABBITMQ_DEFAULT_USER": "alice", "RABBITMQ_DEFAULT_PASS": "s3cret-pass"}
    started = broker_alone.compose(
        "up", "--detach", "--wait", "--no-deps", "rabbitmq", env=env, check=False, timeout=300
    )
    logs = broker_alone.compose("logs", "--no-color", "--no-log-prefix", "rabbitmq", env=env).stdout
    running = broker_alone.compose("ps", "--status", "running", "--quiet", "rabbitmq", env=env).stdout.strip()
    assert started.returncode != 0 and not running, started.stdout + started.stderr
    assert "start-broker.sh: refusing to run: LAB_BIND_ADDRESS=0.0.0.0 publishes the broker beyond this machine " \
           "while its user(s) guest have the password guest or their own name" in logs, logs[-3000:]  # fmt: skip
    assert "docker compose down -v" in logs
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker_alone.amqp_port))  # guest/guest
    # A refusal, not a stop: the broker's own status, and doctor.sh names the cause and the ways out.
    exit_code = broker_alone.run(["docker", "inspect", "--format", "{{.State.ExitCode}}",
                                  f"{broker_alone.env['COMPOSE_PROJECT_NAME']}-rabbitmq-1"]).stdout.strip()  # fmt: skip
    assert exit_code == "1"
    doctor = broker_alone.script("doctor.sh", env=env, timeout=60).stdout
    broker = next(line for line in doctor.splitlines() if line.startswith("FAIL  broker"))
    assert "refused to start: LAB_BIND_ADDRESS=0.0.0.0 publishes the broker beyond this machine while its " \
           "user(s) guest have the password guest or their own name" in broker, doctor  # fmt: skip
    assert "-> fix: docker compose down -v (drops queued tasks), or delete those users, or " \
           "LAB_BIND_ADDRESS=127.0.0.1; then: docker compose up -d" in broker, doctor  # fmt: skip
    assert "stopped (docker compose stop)" not in doctor
