"""Many app servers, one store: real server processes (ASGI under uvicorn, WSGI under a
threaded server) sharing SQLite, Redis or PostgreSQL; the store going away and coming back;
store round trips per request counted on a real Redis server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionkeeper import open_store
from sessionkeeper import wsgi as sk_wsgi

from ..conftest import free_port, port_open, require_service
from ..redis_servers import RedisServer, delete_prefix, have_redis_server
from ..stores.backends import postgres as pg_backend

ROOT = Path(__file__).resolve().parents[2]


def _redis_up() -> None:
    if not port_open("127.0.0.1", 6379):
        require_service("Redis", "nothing listens on 127.0.0.1:6379")


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
    elif kind == "redis":
        _redis_up()
        prefix = f"skx{secrets.token_hex(4)}:"
        yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        delete_prefix([client], prefix)
        client.close()
    else:
        pg_backend.require_postgres()
        table = pg_backend.new_table()
        yield f"{pg_backend.URL}?table={table}&create_schema=true&max_size=4"
        pg_backend.drop_table(table)


class AppServer:
    """One app server process (``tests/apps/shared_app.py``) on a free loopback port."""

    def __init__(self, kind: str, store_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.apps.shared_app", kind, str(self.port), store_url],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{kind} app server did not start: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.proc.stdout.read().decode() if self.proc.stdout else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def two_servers(store_url: str) -> Iterator[tuple[AppServer, AppServer]]:
    a = AppServer("asgi", store_url)
    try:
        b = AppServer("wsgi", store_url)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_two_app_servers_share_logins_data_and_logouts(two_servers: tuple[AppServer, AppServer]) -> None:
    a, b = two_servers
    # One browser: its cookie jar sends the same cookie to both (cookies ignore ports).
    with httpx.Client(timeout=10) as browser:
        assert browser.post(f"{a.base}/login", params={"user": "ann"}).status_code == 200
        assert browser.get(f"{b.base}/whoami").json()["user"] == "ann"
        browser.post(f"{b.base}/set", params={"k": "theme", "v": "dark"})
        assert browser.get(f"{a.base}/whoami").json() == {"user": "ann", "data": {"theme": "dark"}}
        stolen = dict(browser.cookies)  # what an attacker copied before the logout
        browser.post(f"{a.base}/logout")
        assert browser.get(f"{b.base}/whoami").json() == {"user": None, "data": {}}
    with httpx.Client(timeout=10, cookies=stolen) as attacker:
        assert attacker.get(f"{b.base}/whoami").json() == {"user": None, "data": {}}
        assert attacker.get(f"{a.base}/whoami").json() == {"user": None, "data": {}}


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if not have_redis_server():
        require_service("redis-server binary", "not on PATH")
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_store_outage_gives_503_then_recovers_without_restart(throwaway_redis: RedisServer) -> None:
    url = throwaway_redis.url + "?socket_timeout=0.5&connect_timeout=0.5"
    servers = [AppServer("asgi", url), AppServer("wsgi", url)]
    try:
        with httpx.Client(timeout=10) as browser:
            browser.post(f"{servers[0].base}/login", params={"user": "bo"})
            browser.post(f"{servers[1].base}/set", params={"k": "cart", "v": "3 items"})
            throwaway_redis.kill()
            for srv in servers:
                r = browser.get(f"{srv.base}/whoami")
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "1"
                assert "unavailable" in r.text
                assert "set-cookie" not in r.headers  # the client keeps its session cookie
            throwaway_redis.start()  # same port, same data (append-only file)
            for srv in servers:
                deadline = time.monotonic() + 15
                while (r := browser.get(f"{srv.base}/whoami")).status_code == 503:
                    assert time.monotonic() < deadline, "the app did not recover by itself"
                    time.sleep(0.2)
                assert r.json() == {"user": "bo", "data": {"cart": "3 items"}}
    finally:
        for srv in servers:
            srv.stop()


# The store sends every operation as one script call (EVALSHA, or EVAL once after a cache
# flush); what the scripts run inside the server (HGETALL, HSET …) is no round trip.
CLIENT_COMMANDS = {f"cmdstat_{c}" for c in ("evalsha", "eval", "evalsha_ro", "eval_ro")}


def _commands(server: RedisServer) -> dict[str, int]:
    client = server.client()
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    # Commands a client sends (one round trip each); commandstats also counts the commands a
    # Lua script runs inside the server, which cost no round trip, and this connection's own.
    return {k: int(v["calls"]) for k, v in stats.items() if k in CLIENT_COMMANDS}


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_store_round_trips_per_request_on_redis(throwaway_redis: RedisServer) -> None:
    """0 round trips untouched, 1 read-only, 2 read-and-write: commands counted by the server."""
    store = open_store(throwaway_redis.url)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ[sk_wsgi.ENVIRON_KEY]
        path = environ["PATH_INFO"]
        if path == "/read":
            session.get("n")
        elif path == "/write":
            session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    from werkzeug.test import Client

    client = Client(sk_wsgi.SessionMiddleware(app, store=store))
    client.get("/write", base_url="https://localhost")  # create
    client.get("/write", base_url="https://localhost")  # the server has cached every script now
    measured: dict[str, list[int]] = {}
    for path in ("/untouched", "/read", "/write", "/untouched", "/read"):
        before = _commands(throwaway_redis)
        r = client.get(path, base_url="https://localhost")
        assert r.status_code == 200
        measured.setdefault(path, []).append(sum(_diff(_commands(throwaway_redis), before).values()))
    store.close()
    assert measured == {"/untouched": [0, 0], "/read": [1, 1], "/write": [2]}


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy_load"])
def test_store_round_trips_per_request_on_redis_asgi(throwaway_redis: RedisServer, lazy: bool) -> None:
    """ASGI: by default the session must be ready before the app runs, so a request that
    carries a session cookie costs its one load even when the app ignores the session (with
    ``lazy_load`` it costs nothing); a request without a cookie costs nothing."""
    import asyncio

    from sessionkeeper import asgi as sk_asgi

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/read":
            session.get("n")
        elif scope["path"] == "/write":
            session["n"] = session.get("n", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> dict[str, list[int]]:
        store = open_store(throwaway_redis.url)
        middleware = sk_asgi.SessionMiddleware(app, store=store, lazy_load=lazy)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=middleware)
        measured: dict[str, list[int]] = {}
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as client:
            before = _commands(throwaway_redis)
            await client.get("/untouched")
            measured["no cookie"] = [sum(_diff(_commands(throwaway_redis), before).values())]
            await client.get("/write")
            await client.get("/write")
            for path in ("/untouched", "/read", "/write"):
                before = _commands(throwaway_redis)
                assert (await client.get(path)).status_code == 200
                measured[path] = [sum(_diff(_commands(throwaway_redis), before).values())]
        await store.aclose()
        store.close()
        return measured

    untouched = 0 if lazy else 1
    assert asyncio.run(main()) == {"no cookie": [0], "/untouched": [untouched], "/read": [1], "/write": [2]}
