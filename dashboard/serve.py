"""Runs the dashboard (app.py) on port 8080, unless its settings are unsafe:
published beyond this machine with the tutorial's guest login, it refuses to
start, in one line, as start-broker.sh does for the broker."""

import logging
import sys

import uvicorn

from app import create_app
from config import Config


def main():
    refusal = Config.from_env().refusal()
    if refusal:
        print(refusal, file=sys.stderr, flush=True)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # A lost broker is said in one line (feeds.py); the AMQP client logged a traceback for it
    # too, at each broker restart, into a student's `docker compose up`.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    # Warnings only: uvicorn's own start-up lines name the container's address, not the host's.
    # No gzip (uvicorn has none): the event stream must reach the browser as it is written.
    uvicorn.run(create_app(), host="0.0.0.0", port=8080, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
