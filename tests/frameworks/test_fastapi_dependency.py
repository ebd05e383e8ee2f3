"""FastAPI without blocking (issue 11): ``SessionMiddleware(deferred=True)`` + the
``SessionDep`` dependency.

What is measured, through real ASGI calls (httpx's ASGITransport in the test's own event loop,
Starlette's TestClient for websockets, uvicorn once):

- store round trips per request, counted by a store wrapper: 0 for a route that does not ask
  for the session (cookie or not), 1 for one that reads it, 2 for read + write;
- the event loop is never blocked: a ticker task runs beside the requests, and a slow store
  (``asyncio.sleep`` in its async face, ``time.sleep`` in its sync one) records how many ticks
  happened *during* each of its operations. The async face lets the ticker run (>= 1 tick,
  guaranteed by the loop's timer order, not by timing); the sync face in the loop's thread
  cannot (0 ticks), which the control test shows with ``lazy_load=True``. No timed assertion.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, WebSocket
from starlette.websockets import WebSocketDisconnect

from sessionkeeper import ConfigError, Session, SessionError, Store, StoreUnavailable, open_store
from sessionkeeper.asgi import SessionMiddleware, get_session, load_session
from sessionkeeper.core.records import Op
from sessionkeeper.fastapi import SessionDep, get_session_async

from ..conftest import port_open, require_service
from ..redis_servers import RedisServer, delete_prefix, have_redis_server

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BASE = "https://testserver"
COOKIE = "__Host-session"


class Probe(Store):
    """Counts every store operation and, while each runs, how far a ticker got.

    ``delay`` > 0 makes it slow: ``await asyncio.sleep`` in the async face, ``time.sleep`` in
    the sync one (which, called from the event loop's thread, stops the loop)."""

    def __init__(self, inner: Store, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.ops: list[str] = []
        self.ticks = 0
        self.ticks_during: list[tuple[str, str, int]] = []  # (face, op, ticks while it ran)
        self._lock = threading.Lock()

    def _seen(self, op: Op) -> None:
        with self._lock:
            self.ops.append(type(op).__name__)

    def execute(self, op: Op) -> Any:
        self._seen(op)
        before = self.ticks
        if self.delay:
            time.sleep(self.delay)
        result = self.inner.execute(op)
        self.ticks_during.append(("sync", type(op).__name__, self.ticks - before))
        return result

    async def aexecute(self, op: Op) -> Any:
        self._seen(op)
        before = self.ticks
        if self.delay:
            await asyncio.sleep(self.delay)
        result = await self.inner.aexecute(op)
        self.ticks_during.append(("async", type(op).__name__, self.ticks - before))
        return result

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()
        self.ticks_during.clear()


async def current_n(session: SessionDep) -> int | None:
    """A sub-dependency that asks for the session too (module level: FastAPI resolves the
    string annotations of ``from __future__ import annotations`` in module globals)."""
    value = session.get("n")
    return value if isinstance(value, int) else None


def make_app(store: Store, **options: Any) -> FastAPI:
    options.setdefault("deferred", True)
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, **options)

    @app.get("/untouched")
    async def untouched() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: SessionDep) -> dict[str, Any]:
        return {"n": session.get("n")}

    @app.get("/write")
    async def write(session: SessionDep) -> dict[str, Any]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/plain")
    async def plain(session: Session = Depends(get_session_async)) -> dict[str, Any]:  # noqa: B008 - FastAPI idiom
        return {"n": session.get("n")}

    @app.get("/twice")
    async def twice(session: SessionDep, n: Annotated[int | None, Depends(current_n)],
                    request: Request) -> dict[str, Any]:
        # the sub-dependency and the route share one load; request.session is the same object
        return {"n": n, "same": request.session is session and get_session(request) is session}

    @app.get("/sync-access")
    async def sync_access(request: Request) -> dict[str, Any]:
        return {"n": request.session.get("n")}

    @app.get("/lazy-read")  # for the control: the sync path (lazy_load=True)
    async def lazy_read(request: Request) -> dict[str, Any]:
        return {"n": request.session.get("n")}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"n": session.get("n"), "user": session.user_id})
        await websocket.close()

    @app.websocket("/ws-untouched")
    async def ws_untouched(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"ok": True})
        await websocket.close()

    return app


def sync_client(app: Any) -> Any:
    """Starlette's TestClient (imported here: at import time it warns, an error under
    ``filterwarnings = error``, that it prefers httpx2; the module's mark ignores that)."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url=BASE)


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@asynccontextmanager
async def ticking(probe: Probe, every: float = 0.005) -> AsyncIterator[None]:
    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            probe.ticks += 1

    task = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker is now waiting on its first timer
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@contextmanager
def redis_store() -> Iterator[Store]:
    if not port_open("127.0.0.1", 6379):
        require_service("Redis", "nothing listens on 127.0.0.1:6379")
    prefix = f"skfa{secrets.token_hex(4)}:"
    store = open_store("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        yield store
    finally:
        store.close()
        import redis

        plain = redis.Redis(host="127.0.0.1", port=6379)
        delete_prefix([plain], prefix)
        plain.close()


@pytest.fixture(params=["memory", "redis"])
def inner_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield open_store("memory://")
    else:
        with redis_store() as store:
            yield store


# ---- round trips -------------------------------------------------------------------------


def test_round_trips_per_request_0_untouched_1_read_2_read_write(inner_store: Store) -> None:
    probe = Probe(inner_store)

    async def main() -> None:
        async with client(make_app(probe)) as c:
            assert (await c.get("/read")).json() == {"n": None}
            assert probe.ops == []  # no cookie: nothing to load, nothing to save
            assert (await c.get("/write")).json() == {"n": 1}
            assert probe.ops == ["Create"]
            assert c.cookies.get(COOKIE)

            for path, expected, ops in [
                ("/untouched", {"ok": True}, []),  # eager ASGI would have loaded it
                ("/read", {"n": 1}, ["Load"]),
                ("/plain", {"n": 1}, ["Load"]),
                ("/twice", {"n": 1, "same": True}, ["Load"]),  # one load for two dependants
                ("/write", {"n": 2}, ["Load", "Apply"]),
            ]:
                probe.reset()
                response = await c.get(path)
                assert response.status_code == 200, response.text
                assert response.json() == expected, path
                assert probe.ops == ops, path
                # Vary: Cookie exactly when the response depended on the session
                assert (response.headers.get("vary") == "Cookie") is bool(ops), path

    async def run() -> None:
        try:
            await main()
        finally:
            await inner_store.aclose()  # async connections belong to this event loop

    asyncio.run(run())
    # and every operation went through the async face
    assert {face for face, _op, _t in probe.ticks_during} == {"async"}


def test_eager_mode_loads_for_every_request_with_a_cookie_for_comparison() -> None:
    probe = Probe(open_store("memory://"))

    async def main() -> None:
        async with client(make_app(probe, deferred=False)) as c:
            await c.get("/write")
            probe.reset()
            await c.get("/untouched")
            assert probe.ops == ["Load"]
            probe.reset()
            assert (await c.get("/read")).json() == {"n": 1}  # the dependency works eagerly too
            assert probe.ops == ["Load"]

    asyncio.run(main())


# ---- the event loop is never blocked -----------------------------------------------------


def test_dependency_load_and_save_never_block_the_event_loop() -> None:
    probe = Probe(open_store("memory://"), delay=0.05)

    async def main() -> None:
        async with client(make_app(probe)) as c, ticking(probe):
            await c.get("/write")
            probe.reset()
            await asyncio.gather(c.get("/read"), c.get("/write"))

    asyncio.run(main())
    # the ticker kept ticking while each slow operation ran: the loop was free
    assert all(ticks >= 1 for _f, _op, ticks in probe.ticks_during), probe.ticks_during
    seen = sorted((face, op) for face, op, _t in probe.ticks_during)
    assert seen == [("async", "Apply"), ("async", "Load"), ("async", "Load")]


def test_control_the_sync_path_does_stall_the_ticker() -> None:
    """The measurement can fail: ``lazy_load=True`` loads through the sync face in the loop's
    thread, and the ticker cannot tick during that load."""
    probe = Probe(open_store("memory://"), delay=0.05)

    async def main() -> None:
        async with client(make_app(probe, deferred=False, lazy_load=True)) as c, ticking(probe):
            await c.get("/write")
            probe.reset()
            assert (await c.get("/lazy-read")).json() == {"n": 1}

    asyncio.run(main())
    assert probe.ticks_during == [("sync", "Load", 0)]


# ---- using the session without the dependency ----------------------------------------------


def test_session_used_before_the_dependency_raises_and_saves_nothing() -> None:
    """Well defined with or without a cookie: SessionError naming the dependency; never a
    blocking sync load, never a write."""
    probe = Probe(open_store("memory://"))

    async def main() -> None:
        async with client(make_app(probe)) as c:
            with pytest.raises(SessionError, match="SessionDep"):
                await c.get("/sync-access")  # no cookie yet
            await c.get("/write")
            probe.reset()
            with pytest.raises(SessionError, match="load_session"):
                await c.get("/sync-access")
            assert probe.ops == []
            assert (await c.get("/read")).json() == {"n": 1}  # the session is intact

    asyncio.run(main())


def test_load_session_for_plain_starlette_code() -> None:
    probe = Probe(open_store("memory://"))
    app = make_app(probe)

    @app.get("/starlette-style")
    async def starlette_style(request: Request) -> dict[str, Any]:
        session = await load_session(request)
        assert await load_session(request) is session  # loaded once
        return {"n": request.session.get("n"), "public": session.public_id is not None}

    async def main() -> None:
        async with client(app) as c:
            await c.get("/write")
            probe.reset()
            assert (await c.get("/starlette-style")).json() == {"n": 1, "public": True}
            assert probe.ops == ["Load"]

    asyncio.run(main())


def test_deferred_with_lazy_load_is_refused() -> None:
    with pytest.raises(ConfigError, match="deferred"):
        SessionMiddleware(FastAPI(), store="memory://", deferred=True, lazy_load=True)
    with pytest.raises(ConfigError, match="deferred"):
        SessionMiddleware(FastAPI(), store="memory://", deferred="yes")  # type: ignore[arg-type]


# ---- websockets --------------------------------------------------------------------------


def test_websocket_gets_the_session_through_the_same_dependency() -> None:
    probe = Probe(open_store("memory://"))
    app = make_app(probe)

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, bool]:
        session.login("u1")
        session["n"] = 7
        return {"ok": True}

    with sync_client(app) as c:
        assert c.post("/login").status_code == 200
        probe.reset()
        # a websocket to the same site carries the cookie (wss: the cookie is Secure)
        with c.websocket_connect("wss://testserver/ws") as ws:
            assert ws.receive_json() == {"n": 7, "user": "u1"}
        assert probe.ops == ["Load"]  # read-only: a websocket never saves
        probe.reset()
        with c.websocket_connect("wss://testserver/ws-untouched") as ws:
            assert ws.receive_json() == {"ok": True}
        assert probe.ops == []


class Down(Store):
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False

    def execute(self, op: Op) -> Any:
        if self.down:
            raise StoreUnavailable("connection refused (test)")
        return self.inner.execute(op)

    async def aexecute(self, op: Op) -> Any:
        if self.down:
            raise StoreUnavailable("connection refused (test)")
        return await self.inner.aexecute(op)


def test_store_down_during_the_dependency_load_is_a_503_or_a_1013_close() -> None:
    store = Down(open_store("memory://"))
    app = make_app(store)
    with sync_client(app) as c:
        assert c.get("/write").json() == {"n": 1}
        store.down = True
        assert c.get("/untouched").status_code == 200  # never asks the store
        r = c.get("/read")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        with pytest.raises(WebSocketDisconnect) as closed, c.websocket_connect("wss://testserver/ws") as ws:
            ws.receive_json()
        assert closed.value.code == 1013
        store.down = False
        assert c.get("/read").json() == {"n": 1}


# ---- a real server -----------------------------------------------------------------------


@contextmanager
def uvicorn_on(app: Any, lifespan: str = "off") -> Iterator[str]:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http="h11", ws="none", lifespan=lifespan, log_config=None,
                            access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def test_round_trips_under_uvicorn() -> None:
    probe = Probe(open_store("memory://"))
    # plain HTTP on loopback: the cookie without Secure (and so without __Host-)
    app = make_app(probe, secure=False, cookie_name="sid")
    with uvicorn_on(app) as base, httpx.Client(base_url=base) as c:
        assert c.get("/write").json() == {"n": 1}
        assert c.cookies.get("sid")
        counts = {}
        for path in ("/untouched", "/read", "/write"):
            probe.reset()
            assert c.get(path).status_code == 200
            counts[path] = list(probe.ops)
    assert counts == {"/untouched": [], "/read": ["Load"], "/write": ["Load", "Apply"]}


# The Redis store sends every operation as one script call; what a script runs inside the
# server is no round trip (as tests/adapters/test_shared_stores.py counts them).
SCRIPT_CALLS = {f"cmdstat_{c}" for c in ("evalsha", "eval", "evalsha_ro", "eval_ro")}


def test_round_trips_counted_by_a_real_redis_server_under_uvicorn(tmp_path: Path) -> None:
    """The same 0 / 1 / 2, counted by the Redis server itself (``INFO commandstats``), for
    the FastAPI app served by uvicorn with the Redis store's async client."""
    if not have_redis_server():
        require_service("redis-server binary", "not on PATH")
    server = RedisServer(tmp_path / "redis").start()
    store = open_store(server.url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()  # the async connections belong to uvicorn's event loop

    app = make_app(store, secure=False, cookie_name="sid")
    app.router.lifespan_context = lifespan

    def script_calls() -> dict[str, int]:
        client = server.client()
        try:
            stats: dict[str, Any] = client.info("commandstats")
        finally:
            client.close()
        return {k: int(v["calls"]) for k, v in stats.items() if k in SCRIPT_CALLS}

    try:
        with uvicorn_on(app, lifespan="on") as base, httpx.Client(base_url=base) as c:
            assert c.get("/write").json() == {"n": 1}
            for path in ("/read", "/write"):
                c.get(path)  # each script's first call loads it (EVALSHA, then EVAL): warm up
            counts = {}
            for path in ("/untouched", "/read", "/write", "/untouched"):
                before = script_calls()
                assert c.get(path).status_code == 200
                after = script_calls()
                counts[path] = sum(after.values()) - sum(before.values())
        assert counts == {"/untouched": 0, "/read": 1, "/write": 2}
    finally:
        store.close()
        server.stop()
