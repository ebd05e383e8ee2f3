"""The Redis store in the conformance suite: the shared server on 127.0.0.1:6379 (``redis``)
and one 3-master Cluster per test session (``redis-cluster``, see ``tests.redis_servers``).

redis-py parses replies with hiredis when it is installed (the dev extras install it, as
``sessionkeeper[hiredis]`` does) and with its pure-Python parser otherwise (a plain
``sessionkeeper[redis]``): ``redis`` runs with whichever redis-py picks, ``redis-pyparser``
forces the pure-Python parser on the same server, so the suite covers both.

Every test gets its own key prefix, and its keys are deleted afterwards: other engineers use
the same server, so nothing here flushes a database.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis._parsers import _AsyncRESP2Parser, _RESP2Parser

from sessionkeeper import Store, open_store
from tests import redis_servers
from tests.conftest import port_open, require_service

NAMES = ["redis", "redis-cluster", "redis-pyparser"]

HOST = "127.0.0.1"
PORT = int(os.environ.get("SESSIONKEEPER_TEST_REDIS_PORT", "6379"))
URL = f"redis://{HOST}:{PORT}/0"


def require_redis() -> None:
    if not port_open(HOST, PORT):
        require_service("Redis", f"nothing listens on {HOST}:{PORT} (set SESSIONKEEPER_TEST_REDIS_PORT)")


def require_cluster() -> redis_servers.Cluster:
    try:
        return redis_servers.shared_cluster()
    except RuntimeError as exc:
        require_service("Redis Cluster", str(exc))
        raise  # unreachable: require_service skips or fails


def new_prefix() -> str:
    return f"skt:{secrets.token_hex(6)}:"


def primaries(name: str) -> list[redis.Redis]:
    """Plain clients to every primary of the backend ``name`` (the caller closes them)."""
    if name != "redis-cluster":
        return [redis.Redis(host=HOST, port=PORT, socket_timeout=5)]
    return list(require_cluster().clients())


@contextmanager
def open(name: str, tmp_path: Path) -> Iterator[Store]:
    if name != "redis-cluster":
        require_redis()
        url = URL
    else:
        url = require_cluster().url
    prefix = new_prefix()
    store = open_store(url, prefix=prefix, socket_timeout=10)
    if name == "redis-pyparser":
        python_parsers(store)
    try:
        yield store
    finally:
        store.close()
        redis_servers.delete_prefix(primaries(name), prefix)


def python_parsers(store: Store) -> None:
    """Have ``store``'s connections parse replies with redis-py's pure-Python parser (what a
    user without hiredis runs), whatever is installed. The sync and async connections take
    different parser classes, so the class goes in as each face's client is made."""
    make = store._make_client  # type: ignore[attr-defined]

    def make_client(asynchronous: bool) -> object:
        store.connection_kwargs["parser_class"] = _AsyncRESP2Parser if asynchronous else _RESP2Parser  # type: ignore[attr-defined]
        try:
            return make(asynchronous)
        finally:
            del store.connection_kwargs["parser_class"]  # type: ignore[attr-defined]

    store._make_client = make_client  # type: ignore[attr-defined]
