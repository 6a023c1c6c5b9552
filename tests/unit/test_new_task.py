"""The producer's input handling, which must reject bad input before connecting."""

import io
import json
from types import SimpleNamespace

import pika
import pytest

import command_line
import new_task
from example_runs import record
from lab import figures, schema


@pytest.fixture
def no_broker(monkeypatch):
    """Fail the test if the program tries to connect."""
    monkeypatch.setenv("RABBITMQ_DEFAULT_USER", "lab")
    monkeypatch.setenv("RABBITMQ_DEFAULT_PASS", "secret")

    def connect(*_args, **_kwargs):
        raise AssertionError("connected to the broker despite bad input")

    monkeypatch.setattr(pika, "BlockingConnection", connect)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["0"], "positive whole number, got '0'"),
        (["--file", "/no/such/file"], "cannot read /no/such/file"),
        ([], "one of the arguments"),
        (["6", "--bogus"], "unrecognized arguments: --bogus"),
        (["6", "--heavy", "3"], "expected A:B, got '3'"),
        (["6", "--heavy", "0:6"], "expected a whole number >= 1, got '0'"),
        (["6", "--random", "6-1"], "needs LO <= HI"),
        (["6", "--seed", "3"], "--seed goes with --random"),
        (["6", "--dots", "2", "--heavy", "3:6"], "not allowed with argument"),
        (["6", "--timeout", "0"], "expected a number of seconds > 0"),
        (["6", "--name", "../x"], "--name may use"),
        (["--file", "tasks.csv", "--dots", "2"], "not a --file"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_never_connects(no_broker, capsys, argv, message):
    try:
        code = new_task.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


SIX = "send.sh: 'six' is not a number of tasks; to send it as the text of one task: scripts/send.sh -- six"


@pytest.mark.parametrize(
    "given, message",
    [
        ((b"six",), SIX),
        ((b"T\xe2che.",), "send.sh: the message is not UTF-8 text"),  # the bytes as the shell had them
        ((b"-3",), "send.sh: the number of tasks must be a positive whole number, got '-3'"),
        ((b"2.5",), "send.sh: the number of tasks must be a positive whole number, got '2.5'"),
        ((b" ",), "send.sh: the message is empty"),
        ((b"6", "--poison"), "send.sh: argument --poison: not allowed with argument --message-on-stdin"),
    ],
)
def test_a_message_on_stdin_is_checked_by_the_same_rules_naming_the_callers_command(
    no_broker, monkeypatch, capsys, given, message
):
    """scripts/send.sh hands the COUNT or MESSAGE over on stdin, byte for byte (and options), and names itself."""
    monkeypatch.setattr("command_line.COMMAND", "scripts/send.sh")
    stdin, *options = given
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as exit_:
        new_task.main(["--message-on-stdin", *options])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_one_bare_word_on_stdin_is_a_task_only_as_text(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"six")))
    assert command_line.parse_args(["--message-on-stdin", "--as-text"]).message_or_count == "six"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Caf\xc3\xa9...")))
    assert command_line.parse_args(["--message-on-stdin"]).message_or_count == "Café..."


def test_missing_login_is_refused_before_connecting(no_broker, monkeypatch, capsys):
    monkeypatch.delenv("RABBITMQ_DEFAULT_PASS")
    with pytest.raises(SystemExit) as ended:
        new_task.main(["1"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == "lab settings: RABBITMQ_DEFAULT_PASS is not set (see .env)\n"


def test_tasks_name_the_queue_for_their_records_only_when_someone_waits():
    waited_for = list(new_task.messages(["A", "B"], "b1", reply_to="task-records.b1"))
    assert [props.reply_to for _queue, _body, props in waited_for] == ["task-records.b1"] * 2
    assert [props.message_id for _queue, _body, props in waited_for] == ["b1.1", "b1.2"]
    (_queue, _body, props), *_ = new_task.messages(["A"], "b2")
    assert props.reply_to is None and props.delivery_mode == 2


@pytest.mark.parametrize(
    "content, message",
    [
        (b"First.\nSecond caf\xe9.\nThird.\n", "standard input line 2 is not UTF-8 text"),
        (b"First.\n" + b"x" * 200_000 + b"\n", "standard input line 2: field larger than field limit"),
        (b"First.\n\nHuge" + b"." * 11 + b"\n", "standard input line 3 asks for 11 dots, more than the 10"),
    ],
)
def test_a_bad_task_file_on_stdin_exits_2_naming_the_line_and_never_connects(
    no_broker, monkeypatch, capsys, content, message
):
    monkeypatch.setenv("MAX_DOTS_PER_TASK", "10")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(content)))
    assert new_task.main(["--file", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"new_task.py: {message}") and err.count("\n") == 1, err


def test_a_bad_row_of_a_file_send_sh_hands_on_stdin_names_the_file(no_broker, monkeypatch, capsys):
    # send.sh hands the file on stdin (the producer's container cannot see it): the error said
    # "standard input line 3", and the student had given my.csv.
    monkeypatch.setenv("MAX_DOTS_PER_TASK", "10")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"First.\n\nHuge" + b"." * 11 + b"\n")))
    assert new_task.main(["--file", "-", "--rows-from", "my.csv"]) == 2
    assert capsys.readouterr().err.startswith("new_task.py: my.csv line 3 asks for 11 dots")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["Big" + "." * 11], "the message asks for 11 dots, more than the 10 a task may ask for (MAX_DOTS_PER_TASK)"),
        (["6", "--dots", "11"], "--dots asks for 11 dots"),
        (["6", "--heavy", "3:11"], "--heavy asks for 11 dots"),
        (["6", "--random", "1-11"], "--random asks for 11 dots"),
        (["caf\udce9."], "the message is not UTF-8 text"),  # how Python passes on a Latin-1 argument
    ],
)
def test_tasks_over_max_dots_per_task_exit_2_and_never_connect(no_broker, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("MAX_DOTS_PER_TASK", "10")
    assert new_task.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"new_task.py: {message}") and err.count("\n") == 1, err


def test_a_failed_send_says_how_many_tasks_the_broker_had_confirmed(no_broker, monkeypatch, capsys):
    def send(*_args):
        raise new_task.SendFailed("ConnectionLost: broker gone", 34_387)

    monkeypatch.setattr(new_task, "send", send)
    assert new_task.main(["50000"]) == 1
    assert capsys.readouterr().err == (
        "new_task.py: sending to rabbitmq:5672 failed: ConnectionLost: broker gone; the broker had confirmed "
        "34,387 of 50,000 tasks (they stay in task_queue; re-sending all would send those twice)\n"
    )


class ConfirmingChannel:
    """A BlockingChannel in confirm mode: basic_publish returns once the broker confirmed,
    or raises (NackError) for a task the broker refuses."""

    def __init__(self, refuse_at=None):
        self.confirming, self.published, self.refuse_at = False, [], refuse_at

    def confirm_delivery(self):
        self.confirming = True

    def basic_publish(self, exchange, routing_key, body, properties):
        assert self.confirming, "published before confirm_delivery"
        if len(self.published) + 1 == self.refuse_at:
            raise pika.exceptions.NackError([body])
        self.published.append((exchange, routing_key, body, properties.delivery_mode))


def one_by_one(channel, texts, stop_requested=lambda: None):
    ignore = lambda _callback: None  # noqa: E731
    told = SimpleNamespace(add_on_connection_blocked_callback=ignore, add_on_connection_unblocked_callback=ignore)
    connection = SimpleNamespace(_impl=told)  # the adapter under a BlockingConnection, which tells of a block
    return new_task.send_one_by_one(connection, channel, new_task.messages(texts, "b1"), stop_requested)


def test_a_few_tasks_go_as_the_tutorial_sends_them_each_confirmed_then_sent(capsys):
    channel = ConfirmingChannel()
    assert one_by_one(channel, ["Hello World!", "Two..", "Bell \x07"]) == 2  # the units of work sent
    assert channel.published == [("", "task_queue", text.encode(), pika.DeliveryMode.Persistent.value)
                                 for text in ["Hello World!", "Two..", "Bell \x07"]]  # fmt: skip
    # The tutorial's line for each, a text that is not printable shown quoted.
    assert capsys.readouterr().out == " [x] Sent Hello World!\n [x] Sent Two..\n [x] Sent 'Bell \\x07'\n"


def test_a_task_the_broker_refuses_ends_the_send_with_the_number_confirmed(capsys):
    with pytest.raises(new_task.SendFailed) as failed:
        one_by_one(ConfirmingChannel(refuse_at=3), ["A", "B", "C", "D"])
    assert failed.value.confirmed == 2 and "NackError" in str(failed.value)
    assert capsys.readouterr().out == " [x] Sent A\n [x] Sent B\n"


def test_a_stop_request_ends_the_send_before_the_next_task(capsys):
    channel = ConfirmingChannel()
    stops = iter([None, "stopped by SIGTERM"])
    with pytest.raises(new_task.SendFailed) as failed:
        one_by_one(channel, ["A", "B", "C"], lambda: next(stops))
    assert failed.value.confirmed == 1 and isinstance(failed.value.__cause__, new_task.StopRequested)
    assert len(channel.published) == 1


def unseen_run(sent=3, done=1):
    return {"sent": sent, "events": [{**record(n, "w1", n, n + 1)} for n in range(1, done + 1)]}


def listener(deleted=False, others=()):
    return SimpleNamespace(task_queue_deleted=deleted, other_consumers=set(others))


def test_tasks_gone_with_a_deleted_task_queue_are_lost_and_said_why():
    run = unseen_run()
    new_task.account_for_the_unseen(run, "left the queue", listener(deleted=True), others_at_start=False)
    assert run["lost because"] == "task_queue was deleted while they were in it"
    assert figures.tally(run)["lost"] == 2 and "done by others" not in run


def test_tasks_that_left_the_queue_are_done_by_others_only_when_other_consumers_were_there():
    seen_other = unseen_run()
    new_task.account_for_the_unseen(seen_other, "left the queue", listener(others={"ctag1.x"}), others_at_start=False)
    assert seen_other["done by others"] == 2 and figures.tally(seen_other)["lost"] == 0
    nobody = unseen_run()
    new_task.account_for_the_unseen(nobody, "left the queue", listener(), others_at_start=False)
    assert "purged, or expired?" in nobody["lost because"] and figures.tally(nobody)["lost"] == 2


def test_stopped_looking_the_tasks_not_seen_done_are_not_called_lost():
    run = unseen_run()
    new_task.account_for_the_unseen(run, "stopped", listener(), others_at_start=False)
    tally = figures.tally(run)
    assert "lost" not in tally and tally["not seen done (stopped looking)"] == 2


class Recording:
    """A BlockingConnection stand-in that keeps what is published on it."""

    published = []

    def __init__(self, parameters):
        self.parameters = parameters

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def channel(self):
        return self

    def exchange_declare(self, *_args, **_kwargs):
        pass

    def basic_publish(self, exchange, routing_key, body, _properties):
        self.published.append((exchange, routing_key, body, self.parameters.blocked_connection_timeout))


def test_the_run_is_announced_to_the_dashboard_with_its_name_before_its_tasks(monkeypatch):
    monkeypatch.setattr(pika, "BlockingConnection", Recording)
    monkeypatch.setattr(Recording, "published", [])
    parameters = [pika.ConnectionParameters(host="rabbitmq")]
    event = {"event": "sending", "batch": "b", "name": "fair", "tasks": 9, "at": 1.0}
    new_task.announce(parameters, event)
    [(exchange, routing_key, body, patience)] = Recording.published
    assert (exchange, routing_key, json.loads(body)) == ("lab.events", "", [event])
    assert schema.problem(event, event=True) is None
    assert patience == 2 and parameters[0].blocked_connection_timeout is None  # the caller's parameters kept


def test_an_announcement_that_cannot_go_does_not_stop_the_send(monkeypatch):
    def refused(_parameters):
        raise pika.exceptions.AMQPConnectionError("refused")

    monkeypatch.setattr(pika, "BlockingConnection", refused)
    new_task.announce([pika.ConnectionParameters(host="rabbitmq")], {"event": "sending"})
