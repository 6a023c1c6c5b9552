"""The lab's live dashboard: who is doing what, in the browser, as it happens.

One page (static/) fed by Server-Sent Events from /events: the workers' events
as they come, and the queues' figures every second (feeds.py). Saved runs
(timelines/*.json, mounted read-only) are served for the page to replay.
Read-only: nothing here writes or sends anything to the broker's queues.
create_app builds it all from the environment; serve.py runs it.
"""

import asyncio
import base64
import os
import secrets
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from batches import RUN_NAME, read_run, replay_steps
from config import Config
from feeds import Follower
from hub import Hub

HERE = Path(__file__).parent


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


def stop_on_failure(task):
    if not task.cancelled() and task.exception():
        print(f"dashboard: cannot follow the workers' events: {task.exception()!r}", file=sys.stderr, flush=True)
        os._exit(1)  # compose restarts it


def create_app(env=None, follower=Follower):
    """The dashboard for these settings (os.environ by default); `follower(config, hub)`
    feeds the hub while the app runs."""
    config = Config.from_env(env)
    timelines = Path(config.timelines)
    hub = Hub(timelines=timelines)

    async def events(request):
        last = request.headers.get("last-event-id", "")
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # and never gzipped: it would buffer
        return StreamingResponse(hub.watch(int(last) if last.isdigit() else None), media_type="text/event-stream",
                                 headers=headers)  # fmt: skip

    async def runs(_request):
        """The saved runs, newest first."""
        files = sorted(timelines.glob("*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
        return JSONResponse([path.stem for path in files])

    async def saved_run(request):
        """A saved run with its figures, segments and figures so far (steps) for a replay to show."""
        name = request.path_params["name"]
        run = read_run(timelines / f"{name}.json") if RUN_NAME.match(name) else None
        if run is None:
            return JSONResponse({"error": f"no saved run {name!r}"}, 404)
        return JSONResponse({**run, "steps": await asyncio.to_thread(replay_steps, run["events"])})

    async def health(_request):
        return JSONResponse({"serving": True, "broker": hub.status["broker"] is not None})

    @asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(follower(config, hub).run())
        task.add_done_callback(stop_on_failure)
        yield
        task.cancel()

    middleware = [Middleware(LoginBeyondLoopback, login=config.login)] if config.beyond_loopback else []
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
    app.state.config, app.state.hub = config, hub
    return app
