"""The tasks to send: generated ones, one given on the command line, or the rows of a
course-style task file, each checked before anything is sent (UTF-8 text, no
longer than a task may be, no more dots than MAX_DOTS_PER_TASK)."""

import csv
import random
import re
import sys

# A task the workers reject as poison (not UTF-8 text), for send.sh --poison: bytes as
# they are sent, as no text the checks here let through could be.
POISON = b"Poison \xff\xfe task."
WORKER_WAIT_SECONDS = 15  # how long a send waits for the running workers to attach
LOOKS_LIKE_A_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# The longest task text: the csv module refuses longer fields in a task file.
MAX_TASK_CHARS = csv.field_size_limit()


class InputError(ValueError):
    """The command line or the task file cannot be turned into tasks."""


def generated_tasks(count, dots=1, heavy=None, spread=None, seed=1):
    """ "Task 1." ... "Task N.": `dots` dots each; or every K-th task H dots with
    heavy=(K, H); or a random number of dots within spread=(LO, HI), drawn
    from `seed`. Made one at a time, so a million tasks take no memory."""
    draw = random.Random(seed)
    for number in range(1, count + 1):
        if spread:
            units = draw.randint(*spread)
        elif heavy and number % heavy[0] == 0:
            units = heavy[1]
        else:
            units = dots
        yield f"Task {number}" + "." * units


def too_much_work(dots, max_dots):
    return f"{dots:,} dots, more than the {max_dots:,} a task may ask for (MAX_DOTS_PER_TASK)"


def check_argument(argument):
    """A COUNT or MESSAGE as given, or InputError: empty, not UTF-8 (undecodable bytes come
    as surrogates, from argv or surrogateescape), or a number that is no positive whole one."""
    argument = argument.strip()
    if not argument:
        raise InputError("the message is empty")
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("the message is not UTF-8 text") from None
    if LOOKS_LIKE_A_NUMBER.fullmatch(argument) and (not argument.lstrip("+").isdigit() or int(argument) < 1):
        raise InputError(f"the number of tasks must be a positive whole number, got {argument!r}")
    return argument


def tasks_from_argument(argument, *, max_dots, **shape):
    """A positive whole number N means N generated tasks; any other text is one task.

    Returns (how many, the task texts).
    """
    argument = check_argument(argument)
    if not LOOKS_LIKE_A_NUMBER.fullmatch(argument):
        if shape:
            raise InputError("--dots, --heavy, --random and --seed shape generated tasks: give a COUNT")
        if len(argument) > MAX_TASK_CHARS:
            raise InputError(f"the message has {len(argument):,} characters; a task may have {MAX_TASK_CHARS:,}")
        if argument.count(".") > max_dots:
            raise InputError(f"the message asks for {too_much_work(argument.count('.'), max_dots)}")
        return 1, [argument]
    if "heavy" in shape:
        option, most = "--heavy", shape["heavy"][1]
    elif "spread" in shape:
        option, most = "--random", shape["spread"][1]
    else:
        option, most = "--dots", shape.get("dots", 1)
    if most > max_dots:
        raise InputError(f"{option} asks for {too_much_work(most, max_dots)}")
    return int(argument), generated_tasks(int(argument), **shape)


def decoded(lines, source):
    """Each line of a file's bytes as text, or InputError naming the first line that is not UTF-8."""
    for number, line in enumerate(lines, start=1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{source} line {number} is not UTF-8 text (byte {exc.start + 1}: {exc.reason})") from None


def tasks_from_rows(lines, source, *, max_dots):
    """The first column of each non-blank row: the course's tasks.csv format.

    `lines` are bytes; all of them are read and checked before any task is sent.
    """
    rows = csv.reader(decoded(lines, source))
    tasks = []
    try:
        for row in rows:
            if len(row) > 1:  # a comma outside quotes: never a task cut short in silence
                raise InputError(
                    f"{source} line {rows.line_num} has {len(row)} columns; a task file has one "
                    f'(a task with a comma in it goes in double quotes: "{",".join(row)[:60]}")'
                )
            task = row[0].strip() if row else ""
            if task.count(".") > max_dots:
                raise InputError(f"{source} line {rows.line_num} asks for {too_much_work(task.count('.'), max_dots)}")
            if task:
                tasks.append(task)
    except csv.Error as exc:  # in practice, a field longer than MAX_TASK_CHARS
        raise InputError(
            f"{source} line {rows.line_num}: {exc}; a task may have {MAX_TASK_CHARS:,} characters"
        ) from None
    if not tasks:
        raise InputError(f"{source} has no tasks (expected one task per row)")
    return len(tasks), tasks


def read_tasks(args, max_dots):
    """The tasks the command line (parsed by new_task.py) asks for, none with more than
    max_dots dots (MAX_DOTS_PER_TASK): (how many, the task texts)."""
    shape = {
        name: getattr(args, name) for name in ("dots", "heavy", "spread", "seed") if getattr(args, name) is not None
    }
    if args.poison:
        return 1, [POISON]
    if args.file is None:
        return tasks_from_argument(args.message_or_count, max_dots=max_dots, **shape)
    if shape:
        raise InputError("--dots, --heavy, --random and --seed shape generated tasks, not a --file")
    if args.file == "-":
        return tasks_from_rows(sys.stdin.buffer, args.rows_from, max_dots=max_dots)
    try:
        with open(args.file, "rb") as rows:
            return tasks_from_rows(rows, args.file, max_dots=max_dots)
    except OSError as exc:
        raise InputError(f"cannot read {args.file}: {exc.strerror}") from exc
