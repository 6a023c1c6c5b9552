"""The tasks: generated, given on the command line or read from a file, checked before anything is sent."""

import pytest

import command_line
import new_task
import workload
from lab.schema import DEFAULT_MAX_DOTS_PER_TASK
from lab.tasks import PoisonTask, read_task

LIMIT = DEFAULT_MAX_DOTS_PER_TASK


def generated(argument, **shape):
    count, tasks = workload.tasks_from_argument(argument, max_dots=LIMIT, **shape)
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
    args = command_line.parse_args(["3", "--dots", "0"])
    count, tasks = workload.read_tasks(args, LIMIT)
    assert (count, list(tasks)) == (3, ["Task 1", "Task 2", "Task 3"])


def test_generated_tasks_are_made_one_at_a_time():
    count, tasks = workload.tasks_from_argument("1000000000", max_dots=LIMIT)
    assert count == 10**9 and next(iter(tasks)) == "Task 1."


def test_shape_options_only_go_with_a_count():
    with pytest.raises(workload.InputError, match="give a COUNT"):
        workload.tasks_from_argument("Hello...", max_dots=LIMIT, dots=2)


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "1e3", "+0", "", "   "])
def test_counts_that_are_not_positive_whole_numbers_are_refused(bad):
    with pytest.raises(workload.InputError):
        workload.tasks_from_argument(bad, max_dots=LIMIT)


def from_rows(rows, max_dots=LIMIT):
    return workload.tasks_from_rows(rows, "tasks.csv", max_dots=max_dots)


def test_course_file_rows_are_tasks():
    rows = [b"First task....\r\n", b"\n", b'"Second, with a comma...."\n', b"Third.\n"]
    assert from_rows(rows) == (3, ["First task....", "Second, with a comma....", "Third."])


def test_a_file_without_tasks_is_refused():
    with pytest.raises(workload.InputError, match="tasks.csv has no tasks"):
        from_rows([b"\n", b" \n"])


def test_a_utf8_bom_at_the_start_of_a_file_is_dropped():
    assert from_rows(["First.\n".encode("utf-8-sig"), "Zweite Aufgabe für dich.\n".encode()]) == (
        2,
        ["First.", "Zweite Aufgabe für dich."],
    )


def test_a_row_that_is_not_utf8_is_named_and_nothing_is_returned():
    rows = [f"Task {n}.\n".encode() for n in range(1, 2001)]
    rows[999] = b"Task 1000 caf\xe9.\n"  # Latin-1
    with pytest.raises(workload.InputError, match=r"^tasks.csv line 1000 is not UTF-8 text \(byte 14: "):
        from_rows(rows)


def test_a_row_too_long_for_a_task_is_named():
    rows = [b"First.\n", b"x" * (workload.MAX_TASK_CHARS + 1) + b".\n", b"Third.\n"]
    with pytest.raises(workload.InputError, match=r"^tasks.csv line 2: field larger than field limit .*131,072"):
        from_rows(rows)


def test_a_row_asking_for_more_dots_than_the_limit_is_named():
    assert from_rows([b"Fine" + b"." * 10 + b"\n"], max_dots=10) == (1, ["Fine.........."])
    rows = [b"Fine.\n", b"\n", b"Huge" + b"." * 11 + b"\n"]
    with pytest.raises(workload.InputError, match=r"^tasks.csv line 3 asks for 11 dots, more than the 10 a task"):
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
    with pytest.raises(workload.InputError, match=message):
        workload.tasks_from_argument(argument, max_dots=LIMIT, **shape)


def test_tasks_at_the_dot_limit_are_fine():
    assert generated("Big" + "." * LIMIT)[0] == 1
    assert generated("2", spread=(LIMIT, LIMIT))[1] == ["Task 1" + "." * LIMIT, "Task 2" + "." * LIMIT]


@pytest.mark.parametrize("name", ["x" * 101, "run/../../etc", "läuft", "a b"])
def test_a_run_name_that_cannot_be_a_file_name_is_refused_before_anything_is_sent(name, capsys):
    with pytest.raises(SystemExit) as ended:
        command_line.parse_args(["3", "--wait", "--name", name])
    assert ended.value.code == 2
    assert "--name may use up to 100 letters" in capsys.readouterr().err


def test_a_row_with_a_comma_outside_quotes_is_refused_with_its_line_number():
    rows = [b"First.\n", b"task,with comma...\n"]
    with pytest.raises(workload.InputError, match=r"tasks.csv line 2 has 2 columns; a task file has one"):
        workload.tasks_from_rows(rows, "tasks.csv", max_dots=10)
    assert workload.tasks_from_rows([b'"task, with comma..."\n'], "tasks.csv", max_dots=10) == (
        1,
        ["task, with comma..."],
    )


def test_poison_on_purpose_is_one_task_the_workers_reject():
    count, tasks = workload.read_tasks(command_line.parse_args(["--poison"]), LIMIT)
    assert (count, tasks) == (1, [workload.POISON])
    with pytest.raises(PoisonTask, match="not valid UTF-8 text"):
        read_task(workload.POISON)
    [(_queue, body, _properties)] = new_task.messages(tasks, "b1")
    assert body == workload.POISON
