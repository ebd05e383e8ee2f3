"""The Redis store's own path to one server (``stores/_redis_wire.py``): the bytes it sends
are redis-py's, and its connections stay in step with the server through restarts,
cancellations and forks."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
import redis.connection
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper import open_store
from sessionkeeper.core.records import Apply, Create, Delta, Load, Meta, Record
from sessionkeeper.stores._redis_wire import pack
from sessionkeeper.stores.redis import RedisStore
from tests import redis_servers

from .conftest import Runner

NOW = 1_800_000_000.0
MODES = ["sync", "async"]


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def rec(value: str = "1") -> Record:
    return Record({"a": value}, Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1800,
                                     absolute_at=NOW + 43200))


def open_on(s: redis_servers.RedisServer, **options: Any) -> RedisStore:
    store = open_store(s.url, **{"prefix": "w:", **options})
    assert isinstance(store, RedisStore)
    return store


# ---- the bytes ---------------------------------------------------------------------------

ARG = st.one_of(st.binary(max_size=40), st.text(max_size=20), st.integers(-(2**63), 2**63 - 1))


NAME = st.sampled_from(["EVALSHA", "HGETALL", b"SCAN", "ZRANGE"])  # redis-py splits names at spaces
CMD = st.tuples(NAME, st.lists(ARG, max_size=8)).map(lambda c: (c[0], *c[1]))


@given(st.lists(CMD, min_size=1, max_size=4))
def test_pack_sends_what_redis_py_sends(cmds: list[tuple[Any, ...]]) -> None:
    theirs = b"".join(redis.connection.Connection().pack_commands(cmds))
    assert pack(cmds) == theirs


@pytest.mark.parametrize("bad", [True, 1.5, None, bytearray(b"x")])
def test_pack_refuses_what_it_cannot_spell_exactly(bad: Any) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        pack([("SET", b"k", bad)])


# ---- staying in step -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_idle_connections_survive_a_server_restart(server: redis_servers.RedisServer, mode: str) -> None:
    """WSTG-SESS availability: the first request after a restart is served, not a 503 (the
    idle connections are stale: EOF is waiting on them, and they are reconnected first)."""
    store = open_on(server)
    run = Runner(store, mode)
    try:
        assert run(Create(key(1), rec()))
        for _ in range(4):  # warm: the idle connections to go stale
            assert run(Load(key(1), NOW)) is not None
        server.kill()
        server.start()
        got = run(Load(key(1), NOW))
        assert got is not None and got.fields == {"a": "1"}
        assert run(Apply(key(1), Delta(set={"a": "2"}), NOW))
    finally:
        run.close()
        store.close()


def test_a_cancelled_command_never_hands_its_reply_to_the_next(server: redis_servers.RedisServer) -> None:
    """A request cancelled while its reply is on the way (client gone, server shutdown) must
    not leave that reply on the connection for the next request to read as its own: that
    would hand one client's session to another (ASVS 5.0 V7, WSTG-SESS: session data stays
    with the session it belongs to)."""
    store = open_on(server)

    async def main() -> None:
        assert await store.aexecute(Create(key(1), rec("one")))
        assert await store.aexecute(Create(key(2), rec("two")))
        server.pause()  # the reply to the next command is held back
        try:
            task = asyncio.ensure_future(store.aexecute(Load(key(1), NOW)))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            server.resume()
        for _ in range(3):
            got = await store.aexecute(Load(key(2), NOW))
            assert got is not None and got.fields == {"a": "two"}
        await store.aclose()

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_shares_its_parents_connections(server: redis_servers.RedisServer) -> None:
    """gunicorn --preload: the app used the store before the workers forked. Parent and child
    each keep working, on their own sockets."""
    store = open_on(server)
    assert store.execute(Create(key(1), rec("parent")))
    pid = os.fork()
    if pid == 0:  # the child: exits 0 only if it reads and writes correctly
        code = 1
        try:
            for n in range(50):
                got = store.execute(Load(key(1), NOW))
                assert got is not None and got.fields["a"] in ("parent", "child")
                assert store.execute(Apply(key(1), Delta(set={f"c{n}": "1"}), NOW))
            code = 0
        finally:
            os._exit(code)
    for n in range(50):
        got = store.execute(Load(key(1), NOW))
        assert got is not None
        assert store.execute(Apply(key(1), Delta(set={f"p{n}": "1"}), NOW))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = store.execute(Load(key(1), NOW))
    assert got is not None and {f"c{n}" for n in range(50)} | {f"p{n}" for n in range(50)} <= set(got.fields)
    store.close()


def test_the_suite_runs_both_reply_parsers(tmp_path: Any) -> None:
    """The dev extras install hiredis (``sessionkeeper[hiredis]``): the conformance suite's
    ``redis`` backend parses replies with it, ``redis-pyparser`` with redis-py's pure-Python
    parser (a plain ``sessionkeeper[redis]``). A parser that went unused would leave one of
    the two configurations users run untested."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser, _HiredisParser, _RESP2Parser

    from .backends import redis as backend

    for name, parsers in (("redis", (_HiredisParser, _AsyncHiredisParser)),
                          ("redis-pyparser", (_RESP2Parser, _AsyncRESP2Parser))):
        with backend.open(name, tmp_path) as store:
            assert isinstance(store, RedisStore)
            store.execute(Create(key(name), rec()))
            for mode, parser in zip(MODES, parsers, strict=True):
                run = Runner(store, mode)
                try:
                    assert run(Load(key(name), NOW)) == rec()
                    wire = store._sync if mode == "sync" else store._async
                    assert [type(c._parser) for c in wire._idle] == [parser], (name, mode)
                finally:
                    run.close()
