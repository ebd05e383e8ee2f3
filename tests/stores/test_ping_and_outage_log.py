"""``Store.ping()`` / ``await Store.aping()`` on every store, and issue 9.4: a store outage is
logged once, with its cause and the store's address without password, and so is its end.

The outage tests run their own redis-server on a free port (killed and restarted on the same
port with its append-only file); the shared server on 6379 is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper import StoreError, StoreUnavailable, open_store
from sessionkeeper.core.records import Create, Load, Meta, Op, Record
from sessionkeeper.drivers import run_async, run_sync
from sessionkeeper.stores.base import Store, report_unavailable
from tests import redis_servers
from tests.conftest import free_port, require_service

from ..waits import WAIT
from .backends import postgres as pg_backend
from .conftest import Runner

NOW = 1_800_000_000.0
KEY = "cd" * 32
MODES = ["sync", "async"]


def rec() -> Record:
    return Record({"a": "1"}, Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 3600,
                                   absolute_at=NOW + 7200))


# ---- ping on every store ----------------------------------------------------------------------


def test_ping_answers_on_every_store(store: Store, run: Runner) -> None:
    """Every backend of the conformance suite (memory, file, sqlite, postgres, redis, cluster),
    both faces: one round trip, its duration, and nothing written."""
    took = store.ping() if run.loop is None else run.await_(store.aping())
    assert isinstance(took, float) and took >= 0
    assert store.count(NOW) == 0


def test_ping_of_a_dead_redis_names_it_without_the_password(tmp_path: Path) -> None:
    server = _server(tmp_path, "--requirepass", "s3cret-pw")
    url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
    store = open_store(url, prefix="p:", connect_timeout=1, socket_timeout=1)
    try:
        assert store.ping() >= 0
        server.kill()
        for ping in (store.ping, lambda: asyncio.run(_aping_and_close(store))):
            with pytest.raises(StoreUnavailable) as info:
                ping()
            text = str(info.value)
            assert f"redis://127.0.0.1:{server.port}/0" in text and "s3cret-pw" not in text
    finally:
        store.close()
        server.stop()


def test_ping_with_a_wrong_password_is_a_store_error_that_says_so(tmp_path: Path) -> None:
    server = _server(tmp_path, "--requirepass", "right-pw")
    try:
        with open_store(f"redis://:wrong-pw@127.0.0.1:{server.port}/0", prefix="p:") as store:
            with pytest.raises(StoreError) as info:
                store.ping()
            assert not isinstance(info.value, StoreUnavailable)
            assert "credentials" in str(info.value) and "wrong-pw" not in str(info.value)
    finally:
        server.stop()


def test_ping_of_postgres_reports_unreachable_and_missing_table() -> None:
    pg_backend.require_postgres()
    port = free_port()  # nothing listens there
    with open_store(f"postgresql://postgres:pw-x@127.0.0.1:{port}/test", pool_timeout=0.5) as store:
        with pytest.raises(StoreUnavailable) as info:
            store.ping()
        assert f"127.0.0.1:{port}/test" in str(info.value) and "pw-x" not in str(info.value)
    table = pg_backend.new_table()
    with open_store(pg_backend.URL, table=table, create_schema=False) as store, \
            pytest.raises(StoreError, match=r"does not exist.*store\.ddl\(\)"):
        store.ping()
    with open_store(pg_backend.URL, table=table) as store:  # the default creates it
        try:
            assert store.ping() >= 0
        finally:
            pg_backend.drop_table(table)


async def _aping_and_close(store: Store) -> float:
    try:
        return await store.aping()
    finally:
        await store.aclose()


# ---- outages: logged once, recovery logged ----------------------------------------------------


def _server(tmp_path: Path, *extra: str) -> redis_servers.RedisServer:
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    return redis_servers.RedisServer(tmp_path / ("r" + secrets.token_hex(3)), *extra, persistent=True).start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[redis_servers.RedisServer]:
    s = _server(tmp_path, "--requirepass", "pw-never-logged")
    try:
        yield s
    finally:
        s.stop()


def one_load() -> Generator[Op, Any, Any]:
    """The smallest request flow: one store operation."""
    return (yield Load(KEY, NOW))


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sessionkeeper"]


def back_after(request: Callable[[], Any], caplog: pytest.LogCaptureFixture) -> None:
    """Keep succeeding (bounded) until the recovery is logged: an outage counts as over once
    no failure has come for ``base.SETTLE`` seconds."""
    for _ in range(int(WAIT / 0.05)):
        if any("reachable again" in r.getMessage() for r in records(caplog)):
            return
        time.sleep(0.05)
        request()
    raise AssertionError("the recovery was never logged")


def test_a_partial_outage_is_one_outage_not_one_per_failure(caplog: pytest.LogCaptureFixture) -> None:
    """One Cluster node down: operations on its keys fail while others succeed. That is one
    outage (one ERROR line), not a flapping down/up pair per interleaved failure."""
    caplog.set_level(logging.INFO, logger="sessionkeeper")
    store = open_store("memory://")
    for _ in range(20):
        report_unavailable(store, StoreUnavailable("node 1 unavailable"))
        assert run_sync(one_load(), store) is None  # succeeds, between failures
    assert [r.levelno for r in records(caplog)] == [logging.ERROR]
    assert store._down_failures == 20


@pytest.mark.parametrize("mode", MODES)
def test_outage_is_logged_once_with_its_cause_and_recovery_is_logged(
    server: redis_servers.RedisServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionkeeper")
    url = f"redis://:pw-never-logged@127.0.0.1:{server.port}/0"
    address = f"redis://127.0.0.1:{server.port}/0"
    store = open_store(url, prefix="o:", connect_timeout=1, socket_timeout=1)
    loop = asyncio.new_event_loop()

    def request() -> Any:
        if mode == "sync":
            return run_sync(one_load(), store)
        return loop.run_until_complete(run_async(one_load(), store))

    try:
        assert store.execute(Create(KEY, rec()))
        assert request() is not None
        assert records(caplog) == []

        server.kill()
        for _ in range(5):  # five requests during the outage: five 503s, one log line
            with pytest.raises(StoreUnavailable):
                request()
        logged = records(caplog)
        assert [r.levelno for r in logged] == [logging.ERROR]
        text = logged[0].getMessage()
        # the cause: refused (sync) or closed under a pooled connection (async)
        assert f"session store {address} unavailable: ConnectionError: " in text
        assert "pw-never-logged" not in text

        server.start()  # same port, same data
        assert request() is not None
        back_after(request, caplog)
        logged = records(caplog)
        assert [r.levelno for r in logged] == [logging.ERROR, logging.WARNING]
        back = logged[1].getMessage()
        assert address in back and "reachable again after" in back and "5 operations failed" in back
        assert all("pw-never-logged" not in r.getMessage() for r in logged)

        server.kill()  # a second outage is a new one: logged again
        with pytest.raises(StoreUnavailable):
            request()
        assert [r.levelno for r in records(caplog)] == [logging.ERROR, logging.WARNING, logging.ERROR]
    finally:
        if mode == "async":
            loop.run_until_complete(store.aclose())
        loop.close()
        store.close()


def test_ping_takes_part_in_the_outage_log(
    server: redis_servers.RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A health endpoint pinging during an outage logs it once, and its first success ends it."""
    caplog.set_level(logging.INFO, logger="sessionkeeper")
    store = open_store(f"redis://:pw-never-logged@127.0.0.1:{server.port}/0", prefix="o:",
                       connect_timeout=1, socket_timeout=1)
    try:
        server.kill()
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                store.ping()
        server.start()
        assert store.ping() >= 0
        back_after(store.ping, caplog)
        assert [r.levelno for r in records(caplog)] == [logging.ERROR, logging.WARNING]
    finally:
        store.close()


def test_a_busy_pool_is_logged_as_busy_not_as_down(
    server: redis_servers.RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionkeeper")
    store = open_store(f"redis://:pw-never-logged@127.0.0.1:{server.port}/0", prefix="o:",
                       max_connections=1, pool_timeout=0)
    try:
        assert store._gate.acquire(blocking=False)  # type: ignore[attr-defined]
        try:
            with pytest.raises(StoreUnavailable, match="busy"):
                run_sync(one_load(), store)
        finally:
            store._gate.release()  # type: ignore[attr-defined]
        (logged,) = records(caplog)
        assert "busy" in logged.getMessage() and "1 connections" in logged.getMessage()
    finally:
        store.close()


def test_addresses_never_show_a_password() -> None:
    cases = {
        "redis://:pw1@h:6380/2?password=pw2": "redis://h:6380/2",
        "redis+cluster://u:pw1@a:1,b:2": "redis+cluster://u@a:1,b:2",
        "postgresql://app:pw1@db:5433/app?sslmode=disable": "postgresql://app@db:5433/app",
        "memory://": "memory://",
        "sqlite://": "sqlite://",
    }
    for url, address in cases.items():
        with open_store(url) as store:
            assert store.address == address
            assert "pw" not in repr(store)
