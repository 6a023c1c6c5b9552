"""The producer's input handling, which must reject bad input before connecting."""

import io

import pika
import pytest

import new_task

LIMIT = new_task.DEFAULT_MAX_DOTS


def generated(argument, **shape):
    count, tasks = new_task.tasks_from_argument(argument, max_dots=LIMIT, **shape)
    return count, list(tasks)


def test_a_count_generates_that_many_tasks():
    assert generated("3") == (3, ["Task 1.", "Task 2.", "Task 3."])


@pytest.mark.parametrize("text", ["Hello...", "First task....", "1 2", "3 tasks"])
def test_any_other_text_is_one_task(text):
    assert generated(text) == (1, [text])


def test_workload_shapes():
    assert generated("3", dots=0)[1] == ["Task 1", "Task 2", "Task 3"]
    dots = [task.count(".") for task in generated("9", heavy=(3, 6))[1]]
    assert dots == [1, 1, 6] * 3  # the [1,1,6]x3 workload of the fair-dispatch demo
    drawn = [task.count(".") for task in generated("50", spread=(1, 6), seed=7)[1]]
    assert drawn == [task.count(".") for task in generated("50", spread=(1, 6), seed=7)[1]]  # repeatable
    assert min(drawn) == 1 and max(drawn) == 6
    assert drawn != [task.count(".") for task in generated("50", spread=(1, 6), seed=8)[1]]


def test_dots_zero_on_the_command_line_means_tasks_with_no_work():
    args = new_task.parse_args(["3", "--dots", "0"])
    count, tasks = new_task.read_tasks(args)
    assert (count, list(tasks)) == (3, ["Task 1", "Task 2", "Task 3"])


def test_generated_tasks_are_made_one_at_a_time():
    count, tasks = new_task.tasks_from_argument("1000000000", max_dots=LIMIT)
    assert count == 10**9 and next(iter(tasks)) == "Task 1."


def test_shape_options_only_go_with_a_count():
    with pytest.raises(new_task.InputError, match="give a COUNT"):
        new_task.tasks_from_argument("Hello...", max_dots=LIMIT, dots=2)


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "1e3", "+0", "", "   "])
def test_counts_that_are_not_positive_whole_numbers_are_refused(bad):
    with pytest.raises(new_task.InputError):
        new_task.tasks_from_argument(bad, max_dots=LIMIT)


def from_rows(rows, max_dots=LIMIT):
    return new_task.tasks_from_rows(rows, "tasks.csv", max_dots=max_dots)


def test_course_file_rows_are_tasks():
    rows = [b"First task....\r\n", b"\n", b'"Second, with a comma...."\n', b"Third.,ignored column\n"]
    assert from_rows(rows) == (3, ["First task....", "Second, with a comma....", "Third."])


def test_a_file_without_tasks_is_refused():
    with pytest.raises(new_task.InputError, match="tasks.csv has no tasks"):
        from_rows([b"\n", b" \n"])


def test_a_utf8_bom_at_the_start_of_a_file_is_dropped():
    assert from_rows(["First.\n".encode("utf-8-sig"), "Zweite Aufgabe für dich.\n".encode()]) == (
        2,
        ["First.", "Zweite Aufgabe für dich."],
    )


def test_a_row_that_is_not_utf8_is_named_and_nothing_is_returned():
    rows = [f"Task {n}.\n".encode() for n in range(1, 2001)]
    rows[999] = b"Task 1000 caf\xe9.\n"  # Latin-1
    with pytest.raises(new_task.InputError, match=r"^tasks.csv line 1000 is not UTF-8 text \(byte 14: "):
        from_rows(rows)


def test_a_row_too_long_for_a_task_is_named():
    rows = [b"First.\n", b"x" * (new_task.MAX_TASK_CHARS + 1) + b".\n", b"Third.\n"]
    with pytest.raises(new_task.InputError, match=r"^tasks.csv line 2: field larger than field limit .*131,072"):
        from_rows(rows)


def test_a_row_asking_for_more_dots_than_the_limit_is_named():
    assert from_rows([b"Fine" + b"." * 10 + b"\n"], max_dots=10) == (1, ["Fine.........."])
    rows = [b"Fine.\n", b"\n", b"Huge" + b"." * 11 + b"\n"]
    with pytest.raises(new_task.InputError, match=r"^tasks.csv line 3 asks for 11 dots, more than the 10 a task"):
        from_rows(rows, max_dots=10)


@pytest.mark.parametrize(
    "argument, shape, message",
    [
        ("Huge" + "." * (LIMIT + 1), {}, f"the message asks for 3,601 dots, more than the {LIMIT:,}"),
        ("6", {"dots": LIMIT + 1}, "--dots asks for 3,601 dots"),
        ("6", {"heavy": (3, LIMIT + 1)}, "--heavy asks for 3,601 dots"),
        ("6", {"spread": (1, LIMIT + 1)}, "--random asks for 3,601 dots"),
    ],
)
def test_tasks_over_the_dot_limit_are_refused_up_front(argument, shape, message):
    with pytest.raises(new_task.InputError, match=message):
        new_task.tasks_from_argument(argument, max_dots=LIMIT, **shape)


def test_tasks_at_the_dot_limit_are_fine():
    assert generated("Big" + "." * LIMIT)[0] == 1
    assert generated("2", spread=(LIMIT, LIMIT))[1] == ["Task 1" + "." * LIMIT, "Task 2" + "." * LIMIT]


def test_the_dot_limit_comes_from_max_dots_per_task():
    assert new_task.max_dots_per_task({}) == 3600
    assert new_task.max_dots_per_task({"MAX_DOTS_PER_TASK": ""}) == 3600
    assert new_task.max_dots_per_task({"MAX_DOTS_PER_TASK": "4000"}) == 4000
    with pytest.raises(new_task.InputError, match="MAX_DOTS_PER_TASK must be a whole number, got '-1'"):
        new_task.max_dots_per_task({"MAX_DOTS_PER_TASK": "-1"})


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


def test_missing_login_is_refused_before_connecting(no_broker, monkeypatch, capsys):
    monkeypatch.delenv("RABBITMQ_DEFAULT_PASS")
    assert new_task.main(["1"]) == 2
    assert "RABBITMQ_DEFAULT_PASS not set" in capsys.readouterr().err


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
