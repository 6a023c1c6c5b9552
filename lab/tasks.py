"""What makes a task poison (one no worker can process): the rules the workers apply
before they reject a task to the dead-letter queue, and that scripts/dead-letters.sh
applies again to say why each one is there."""

from lab.schema import DEFAULT_MAX_DOTS_PER_TASK


class PoisonTask(ValueError):
    """A task no worker can process: it goes to the dead-letter queue, not back to task_queue."""


def read_task(body, max_dots=DEFAULT_MAX_DOTS_PER_TASK):
    """The task's text, or PoisonTask saying why there is no valid task in `body`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PoisonTask("not valid UTF-8 text") from None
    if not text.strip():
        raise PoisonTask("an empty task")
    if text.count(".") > max_dots:
        raise PoisonTask(f"{text.count('.')} units of work, more than the {max_dots} a task may ask for")
    return text
