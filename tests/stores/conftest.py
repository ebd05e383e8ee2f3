"""Fixtures for the store conformance suite: every backend, sync and async."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper import Store
from sessionkeeper.core.records import Op
from tests import redis_servers
from tests.conftest import require_service

from . import backends

_MODULES = {
    name: module
    for info in sorted(pkgutil.iter_modules(backends.__path__), key=lambda i: i.name)
    for module in [importlib.import_module(f"{backends.__name__}.{info.name}")]
    for name in module.NAMES
}


class Runner:
    """Runs store operations through the sync face or, in one event loop, the async face."""

    def __init__(self, store: Store, mode: str) -> None:
        self.store = store
        self.mode = mode
        self.loop: asyncio.AbstractEventLoop | None = None
        if mode == "async":
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self._thread.start()

    def await_(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __call__(self, op: Op) -> Any:
        if self.loop is None:
            return self.store.execute(op)
        return self.await_(self.store.aexecute(op))

    def close(self) -> None:
        if self.loop is not None:
            self.await_(self.store.aclose())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


@pytest.fixture(params=sorted(_MODULES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    with _MODULES[backend].open(backend, tmp_path) as s:
        yield s


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest, store: Store) -> Iterator[Runner]:
    runner = Runner(store, request.param)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[redis_servers.RedisServer]:
    """A throwaway redis-server with an append-only file (survives kill + start)."""
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    s = redis_servers.RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        yield s
    finally:
        s.stop()
