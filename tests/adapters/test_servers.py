"""Real servers on loopback ports, real concurrency (issue 2, behaviours 5 and 6).

- uvicorn serving a Starlette app, driven by asyncio tasks over httpx.AsyncClient;
- a threaded WSGI server (wsgiref + ThreadingMixIn) serving a plain WSGI app and a Flask app,
  driven by threads over urllib.

The concurrent requests meet at a rendezvous *after* each has loaded the session and *before*
any of them writes, so every one of them saves on top of the same stale copy: a store that
wrote whole records instead of per-key deltas would keep one key, not fifty. Every wait is
bounded; servers are stopped after each test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import uvicorn
from flask import Flask, request
from flask import session as flask_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkeeper import Store, asgi, wsgi
from sessionkeeper import flask as sk_flask
from sessionkeeper.core import ids

from ..waits import WAIT, Gate, Rendezvous
from .conftest import COOKIE, CountingStore

N = 50


def qs(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query).items()}


def handle(session: Any, path: str, q: dict[str, str]) -> Any:
    """The app's logic, the same for every framework (sync part)."""
    if path == "/set":
        session[q["k"]] = q["v"]
        return "set"
    if path == "/all":
        return dict(session)
    if path == "/logout":
        session.logout()
        return "out"
    raise LookupError(path)


# ---- apps ----------------------------------------------------------------------------------


def starlette_app(store: Store, meet: Rendezvous, gate: Gate) -> Starlette:
    async def endpoint(req: Request) -> JSONResponse:
        path, q = req.url.path, dict(req.query_params)
        if path == "/concurrent":
            assert "init" in req.session  # loaded (ASGI loads before the app runs)
            await meet.wait_async()
            req.session[q["k"]] = q["v"]
            return JSONResponse("set")
        if path == "/slow":
            req.session["slow"] = "write"
            await asyncio.to_thread(gate.hold)
            return JSONResponse("slow")
        return JSONResponse(handle(req.session, path, q))

    return Starlette(
        routes=[Route(p, endpoint) for p in ("/set", "/all", "/logout", "/concurrent", "/slow")],
        middleware=[Middleware(asgi.SessionMiddleware, store=store)],
    )


def wsgi_app(store: Store, meet: Rendezvous, gate: Gate) -> wsgi.SessionMiddleware:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ[wsgi.ENVIRON_KEY]
        path, q = environ["PATH_INFO"], qs(environ.get("QUERY_STRING", ""))
        if path == "/concurrent":
            assert "init" in session  # loads it now (lazily)
            meet.wait_sync()
            session[q["k"]] = q["v"]
            body: Any = "set"
        elif path == "/slow":
            session["slow"] = "write"
            gate.hold()
            body = "slow"
        else:
            body = handle(session, path, q)
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wsgi.SessionMiddleware(app, store=store)


def flask_app(store: Store, meet: Rendezvous, gate: Gate) -> Flask:
    app = Flask(__name__)

    @app.route("/<name>")
    def endpoint(name: str) -> Any:
        q = request.args.to_dict()
        if name == "concurrent":
            assert "init" in flask_session
            meet.wait_sync()
            flask_session[q["k"]] = q["v"]
            return app.json.response("set")
        if name == "slow":
            flask_session["slow"] = "write"
            gate.hold()
            return app.json.response("slow")
        return app.json.response(handle(flask_session, "/" + name, q))

    sk_flask.init_app(app, store=store)
    return app


# ---- servers -------------------------------------------------------------------------------


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http="h11", ws="none", lifespan="off", log_config=None,
                            access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(int(WAIT / 0.01)):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # 50 clients connect at once


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def threaded_wsgi_server(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
        assert not thread.is_alive()


# ---- clients -------------------------------------------------------------------------------


def fetch(base: str, path: str, token: str | None = None) -> tuple[int, list[str], Any]:
    """GET with urllib: (status, Set-Cookie tokens, JSON body)."""
    req = urllib.request.Request(base + path)
    if token is not None:
        req.add_header("Cookie", f"{COOKIE}={token}")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:  # loopback only
            status, headers, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    tokens = [c.split(";", 1)[0].split("=", 1)[1] for c in headers.get_all("Set-Cookie") or []]
    return status, tokens, json.loads(body)


def new_session(base: str) -> str:
    status, tokens, _ = fetch(base, "/set?k=init&v=1")
    assert status == 200 and len(tokens) == 1 and ids.is_valid_token(tokens[0])
    return tokens[0]


SYNC_SERVERS = {"wsgi": wsgi_app, "flask": flask_app}


def run_sync_concurrent(base: str, token: str) -> None:
    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(lambda i: fetch(base, f"/concurrent?k=k{i}&v={i}", token), range(N)))
    assert [(status, cookies) for status, cookies, _ in results] == [(200, [])] * N


async def run_async_concurrent(base: str, token: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
        responses = await asyncio.gather(*(
            client.get(f"/concurrent?k=k{i}&v={i}", headers={"Cookie": f"{COOKIE}={token}"})
            for i in range(N)
        ))
    assert [r.status_code for r in responses] == [200] * N


# ---- behaviour 5: no lost updates ------------------------------------------------------------


EXPECTED = {"init": "1", **{f"k{i}": str(i) for i in range(N)}}


def test_asgi_fifty_concurrent_keys_survive(store: CountingStore) -> None:
    with uvicorn_server(starlette_app(store, Rendezvous(N), Gate())) as base:
        token = new_session(base)
        asyncio.run(run_async_concurrent(base, token))
        assert fetch(base, "/all", token)[2] == EXPECTED
    # Every request loaded before any of them wrote: each wrote on top of a stale copy.
    assert store.kinds() == ["Create"] + ["Load"] * N + ["Apply"] * N + ["Load"]


@pytest.mark.parametrize("framework", sorted(SYNC_SERVERS))
def test_threaded_wsgi_fifty_concurrent_keys_survive(store: CountingStore, framework: str) -> None:
    app = SYNC_SERVERS[framework](store, Rendezvous(N), Gate())
    with threaded_wsgi_server(app) as base:
        token = new_session(base)
        run_sync_concurrent(base, token)
        assert fetch(base, "/all", token)[2] == EXPECTED
    assert store.kinds() == ["Create"] + ["Load"] * N + ["Apply"] * N + ["Load"]


# ---- behaviour 6: no resurrection -------------------------------------------------------------


def check_no_resurrection(base: str, store: CountingStore, gate: Gate) -> None:
    token = new_session(base)
    slow_result: list[tuple[int, list[str], Any]] = []
    slow = threading.Thread(target=lambda: slow_result.append(fetch(base, "/slow", token)), daemon=True)
    slow.start()
    try:
        assert gate.reached.wait(WAIT), "slow request never got going"
        status, tokens, _ = fetch(base, "/logout", token)  # completes while /slow holds
        assert status == 200 and tokens == ['""']
    finally:
        gate.release.set()
        slow.join(WAIT)
    assert not slow.is_alive()
    assert slow_result and slow_result[0][0] == 200
    assert slow_result[0][1] == []  # its save failed: no cookie for a dead session
    # create; slow loads; logout loads and deletes; slow's save comes last and is refused.
    assert store.kinds() == ["Create", "Load", "Load", "Delete", "Apply"]
    assert store.inner.load(ids.storage_key(token), now=time.time()) is None
    assert fetch(base, "/all", token)[2] == {}  # the old cookie gives a fresh session


def test_asgi_logout_beats_a_slow_request(store: CountingStore) -> None:
    gate = Gate()
    with uvicorn_server(starlette_app(store, Rendezvous(N), gate)) as base:
        check_no_resurrection(base, store, gate)


@pytest.mark.parametrize("framework", sorted(SYNC_SERVERS))
def test_threaded_wsgi_logout_beats_a_slow_request(store: CountingStore, framework: str) -> None:
    gate = Gate()
    with threaded_wsgi_server(SYNC_SERVERS[framework](store, Rendezvous(N), gate)) as base:
        check_no_resurrection(base, store, gate)
