"""python -m checker.detached COMMAND...: run COMMAND in a session of its own and wait for
it, whatever signal comes (its exit status). check-worker.sh starts the lab's workers
again this way: a second Ctrl+C, or a closed terminal, signals the terminal's foreground
process group, and `docker compose up` (a Go program, which takes back the SIGINT bash
ignores) would stop half-way, leaving a worker stopped."""

import signal
import subprocess
import sys


def main(command):
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    return subprocess.run(command, start_new_session=True, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
