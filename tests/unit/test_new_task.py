"""The producer's input handling, which must reject bad input before connecting."""

import pika
import pytest

import new_task


def generated(argument, **shape):
    count, tasks = new_task.tasks_from_argument(argument, **shape)
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
    count, tasks = new_task.tasks_from_argument("1000000000")
    assert count == 10**9 and next(iter(tasks)) == "Task 1."


def test_shape_options_only_go_with_a_count():
    with pytest.raises(new_task.InputError, match="give a COUNT"):
        new_task.tasks_from_argument("Hello...", dots=2)


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "1e3", "+0", "", "   "])
def test_counts_that_are_not_positive_whole_numbers_are_refused(bad):
    with pytest.raises(new_task.InputError):
        new_task.tasks_from_argument(bad)


def test_course_file_rows_are_tasks():
    rows = ["First task....\n", "\n", '"Second, with a comma...."\n', "Third.,ignored column\n"]
    assert new_task.tasks_from_rows(rows, "tasks.csv") == (3, ["First task....", "Second, with a comma....", "Third."])


def test_a_file_without_tasks_is_refused():
    with pytest.raises(new_task.InputError, match="tasks.csv has no tasks"):
        new_task.tasks_from_rows(["\n", " \n"], "tasks.csv")


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
