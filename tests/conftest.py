"""For every layer: a run started in the background (`scripts/test.sh &`, nohup, a CI
runner's job) ignores SIGINT, and an ignored signal is inherited, so the scripts the
tests interrupt as Ctrl+C does could not trap it. A handler is not inherited: set one."""

import signal

signal.signal(signal.SIGINT, signal.default_int_handler)
