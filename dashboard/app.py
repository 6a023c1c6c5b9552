"""The lab's live dashboard: who is doing what, in the browser, as it happens.

One page (static/) fed by Server-Sent Events from /events: the workers' events
as they come, and the queues' figures every second. Saved runs
(timelines/*.json, mounted read-only) are served for the page to replay.
Read-only: nothing here writes or sends anything to the broker's queues.
"""

import asyncio
import base64
import logging
import os
import re
import secrets
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feeds import QueueFigures, follow_events
from hub import Hub

HERE = Path(__file__).parent
TIMELINES = Path(os.environ.get("TIMELINES", "/app/timelines"))
RUN_NAME = re.compile(r"^[\w.-]+$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Config:
    amqp_url: str
    management_url: str
    login: str
    bind_address: str
    address: str  # where a browser on the host finds the page

    @classmethod
    def from_env(cls, env=os.environ):
        user, password = env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]
        host, port = env.get("RABBITMQ_HOST", "rabbitmq"), env.get("RABBITMQ_PORT", "5672")
        bind = env.get("LAB_BIND_ADDRESS", "127.0.0.1")
        shown_host = "localhost" if bind in (*LOOPBACK, "0.0.0.0") else bind
        return cls(
            amqp_url=f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}",
            management_url=f"http://{host}:15672",
            login=f"{user}:{password}",
            bind_address=bind,
            address=f"http://{shown_host}:{env.get('DASHBOARD_PORT', 8080)}",
        )


class LoginBeyondLoopback:
    """Published on loopback only, the page needs no login; published beyond this
    machine (LAB_BIND_ADDRESS), it asks for the lab's login, as the management UI does."""

    def __init__(self, app, login):
        self.app, self.login = app, login

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/healthz":
            given = dict(scope["headers"]).get(b"authorization", b"")
            expected = b"Basic " + base64.b64encode(self.login.encode())
            if not secrets.compare_digest(given, expected):
                headers = {"WWW-Authenticate": 'Basic realm="lab dashboard"'}
                await Response("login needed", 401, headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


CONFIG = Config.from_env()
HUB = Hub()
STATUS = {"broker": False}


async def events(request):
    last = request.headers.get("last-event-id", "")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # and never gzipped: it would buffer
    return StreamingResponse(HUB.watch(int(last) if last.isdigit() else None), media_type="text/event-stream",
                             headers=headers)  # fmt: skip


async def runs(_request):
    """The saved runs, newest first."""
    files = sorted(TIMELINES.glob("*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    return JSONResponse([path.stem for path in files])


async def saved_run(request):
    name = request.path_params["name"]
    path = TIMELINES / f"{name}.json"
    if not RUN_NAME.match(name) or not path.is_file():
        return JSONResponse({"error": f"no saved run {name!r}"}, 404)
    return FileResponse(path, media_type="application/json")


async def health(_request):
    return JSONResponse({"serving": True, **STATUS})


@asynccontextmanager
async def lifespan(_app):
    tasks = [
        asyncio.create_task(follow_events(CONFIG, HUB, STATUS)),
        asyncio.create_task(QueueFigures(CONFIG, HUB).run()),
    ]
    tasks[0].add_done_callback(stop_on_failure)
    yield
    for task in tasks:
        task.cancel()


def stop_on_failure(task):
    if not task.cancelled() and task.exception():
        print(f"dashboard: cannot follow the workers' events: {task.exception()!r}", file=sys.stderr, flush=True)
        os._exit(1)  # compose restarts it


middleware = [] if CONFIG.bind_address in LOOPBACK else [Middleware(LoginBeyondLoopback, login=CONFIG.login)]
app = Starlette(
    routes=[
        Route("/events", events),
        Route("/api/runs", runs),
        Route("/api/runs/{name}", saved_run),
        Route("/healthz", health),
        Mount("/", StaticFiles(directory=HERE / "static", html=True)),
    ],
    middleware=middleware,
    lifespan=lifespan,
)
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
