"""scripts/doctor.sh against the real test stack: every check OK when the lab is
healthy, and when it is not, what is wrong and the fix."""

import contextlib
import os
import re
import socket
import threading

from labstack import free_port
from stacklab import CONSUMERS

NOT_STARTED = {"COMPOSE_PROJECT_NAME": "lab-test-not-started"}
CHECKS = [
    "docker",
    "compose",
    ".env",
    "line endings",
    "AMQP_PORT",
    "MANAGEMENT_PORT",
    "DASHBOARD_PORT",
    "broker",
    "workers",
    "task_queue",
]


def doctor(lab, **env):
    """doctor.sh's exit status and {check: (verdict, the rest of its line)}."""
    result = lab.script("doctor.sh", env=env, timeout=60)
    assert result.stderr == ""
    lines = [re.match(r"(\w+) +(line endings|\S+) +(.*)", line).groups() for line in result.stdout.splitlines()]
    assert [check for _, check, _ in lines] == CHECKS, result.stdout
    return result.returncode, {check: (verdict, rest) for verdict, check, rest in lines}


def failed(checks, name):
    """What doctor.sh says of check NAME, which must have failed."""
    verdict, rest = checks[name]
    assert verdict == "FAIL", rest
    return rest


def test_every_check_is_ok_on_the_healthy_lab(lab):
    # An earlier test may have restarted the broker: doctor.sh rightly says "still starting" until healthy.
    lab.wait_for(lambda: lab.broker_health() == "healthy", "the broker healthy")
    status, checks = doctor(lab)
    assert {check: line for check, line in checks.items() if line[0] != "OK"} == {}
    assert status == 0
    assert checks["AMQP_PORT"][1] == f"{lab.amqp_port}: this lab's broker"
    assert checks["MANAGEMENT_PORT"][1] == f"{lab.management_port}: this lab's broker"
    assert checks["DASHBOARD_PORT"][1] == f"{lab.dashboard_port}: this lab's dashboard"
    assert checks["workers"][1] == f"{CONSUMERS} running, {CONSUMERS} attached to task_queue, prefetch 1"
    assert checks["task_queue"][1] == "quorum, policy task-queue"


def relay_to(port):
    """A listener on a free port that relays each connection to PORT, from this process:
    the test stack's broker as a RabbitMQ outside Docker would look."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(4096):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def serve():
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                client, _ = listener.accept()
                broker = socket.create_connection(("127.0.0.1", port))
                threading.Thread(target=pipe, args=(client, broker), daemon=True).start()
                threading.Thread(target=pipe, args=(broker, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_rabbitmq_outside_docker_is_named_as_installed_natively_with_the_env_fix(lab):
    with relay_to(lab.amqp_port) as listener:
        port = listener.getsockname()[1]
        status, checks = doctor(lab, **NOT_STARTED, AMQP_PORT=str(port), MANAGEMENT_PORT=str(free_port()))
    assert status == 1
    rest = failed(checks, "AMQP_PORT")
    assert rest.startswith(f"{port}: a RabbitMQ already listens there (installed natively?): python"), rest
    assert f"(pid {os.getpid()}) -> fix: stop that broker (" in rest
    assert re.search(r"or set AMQP_PORT=\d+ in \.env \(port changes belong in \.env\)$", rest), rest


def test_a_rabbitmq_on_the_lab_ports_is_named_with_the_env_fix(lab):
    # Another lab's ports, held by the test stack's broker: a real RabbitMQ, as a native one would be.
    status, checks = doctor(lab, **NOT_STARTED)
    assert status == 1
    for name, port in (("AMQP_PORT", lab.amqp_port), ("MANAGEMENT_PORT", lab.management_port)):
        rest = failed(checks, name)
        container = f"{lab.env['COMPOSE_PROJECT_NAME']}-rabbitmq-1"
        assert rest.startswith(f"{port}: a RabbitMQ already listens there: container {container} -> fix: "), rest
        assert f"stop that container (docker stop {container}), or set {name}=" in rest
        assert re.search(rf"or set {name}=\d+ in \.env \(port changes belong in \.env\)$", rest), rest
    dashboard = f"{lab.env['COMPOSE_PROJECT_NAME']}-dashboard-1"
    assert failed(checks, "DASHBOARD_PORT").startswith(
        f"{lab.dashboard_port}: it is in use by another program: container {dashboard} -> fix: "
        f"stop that container (docker stop {dashboard}), or set DASHBOARD_PORT="
    )
    assert checks["broker"] == (
        "FAIL",
        "no broker container: the lab is not running -> fix: docker compose up -d --scale consumer=3",
    )
    assert checks["workers"][0] == checks["task_queue"][0] == "SKIP"


def test_another_program_on_the_management_port_is_named(lab):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        status, checks = doctor(lab, **NOT_STARTED, AMQP_PORT=str(free_port()), MANAGEMENT_PORT=str(port))
    assert status == 1
    assert checks["AMQP_PORT"][0] == "OK" and checks["AMQP_PORT"][1].endswith(": free")
    rest = failed(checks, "MANAGEMENT_PORT")
    # This test's own process holds it; lsof or ss names it.
    assert rest.startswith(f"{port}: it is in use by another program: python"), rest
    assert f"(pid {os.getpid()})" in rest
    assert re.search(r"-> fix: stop that program, or set MANAGEMENT_PORT=\d+ in \.env", rest), rest


def test_a_broker_that_exited_is_shown_with_its_exit_code(lab):
    lab.compose("kill", "rabbitmq")  # the next test's `lab` fixture starts it again
    status, checks = doctor(lab)
    assert status == 1
    verdict, rest = checks["broker"]
    assert verdict == "FAIL" and rest.startswith("exited (code 137); its last log line: "), rest
    assert checks["AMQP_PORT"] == ("OK", f"{lab.amqp_port}: free")
    sent = lab.send("1")
    assert sent.returncode == 1
    assert "the lab is not running (its broker container is 'Exited (137)" in sent.stderr
    assert "scripts/doctor.sh tells what is wrong" in sent.stderr
