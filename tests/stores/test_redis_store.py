"""Redis store specifics beyond the conformance suite: round trips, the Cluster layout and
two-step rename, the self-healing user index, hostile input, outages, URLs, Sentinel.

Round trips are counted on the client: every ``send_packed_command`` of a redis-py
connection is one request written to the socket (a pipeline is one), i.e. one round trip.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection
from redis.exceptions import ClusterDownError, NoScriptError, ReadOnlyError, ResponseError, TryAgainError

from sessionkeeper import ConfigError, StoreError, StoreUnavailable, open_store
from sessionkeeper.core.records import (
    Apply,
    Count,
    Create,
    Delete,
    Delta,
    ListUser,
    Load,
    Meta,
    Op,
    Purge,
    Record,
    Rename,
)
from sessionkeeper.stores import _redis_lua as lua
from sessionkeeper.stores._redis_plan import Layout, Send, translate
from sessionkeeper.stores._redis_wire import AsyncWire, SyncWire
from sessionkeeper.stores.redis import RedisStore
from tests import redis_servers
from tests.conftest import require_service

from .backends import redis as backend
from .conftest import Runner

NOW = 1_800_000_000.0
MODES = ["sync", "async"]
BACKENDS = ["redis", "redis-cluster"]


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def meta(now: float = NOW, ttl: float = 1800, user: str | None = None, **kw: Any) -> Meta:
    return Meta(created_at=now, last_seen=now, expires_at=now + ttl, absolute_at=now + 43200,
                user_id=user, **kw)


def rec(fields: dict[str, str] | None = None, **kw: Any) -> Record:
    return Record(fields if fields is not None else {"a": "1"}, meta(**kw))


def ms(t: float) -> int:
    return math.ceil(t * 1000)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[redis_servers.Cluster]:
    """The session's Cluster (shared with the conformance suite's ``redis-cluster`` backend)."""
    yield backend.require_cluster()
    redis_servers.stop_shared()  # at the end of the session; atexit covers runs without this fixture


class Env:
    """A store on one backend plus plain clients to look at what it wrote."""

    def __init__(self, name: str, store: RedisStore, run: Runner) -> None:
        self.name = name
        self.store = store
        self.run = run
        self.prefix = store.plans.layout.prefix

    def raw(self) -> redis.Redis | redis.RedisCluster:
        if self.name == "redis":
            return redis.Redis(host=backend.HOST, port=backend.PORT)
        c = backend.require_cluster().servers[0]
        return redis.RedisCluster(host="127.0.0.1", port=c.port)

    def skey(self, k: str) -> bytes:
        return f"{self.prefix}{{{k}}}".encode()

    def ikey(self, user: str) -> bytes:
        tag = hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}u:{{{tag}}}".encode()

    def all_keys(self) -> dict[bytes, bytes]:
        """Every key of this test's prefix -> DUMP of its value."""
        out = {}
        for c in backend.primaries(self.name):
            try:
                for k in c.scan_iter(match=self.prefix.replace("*", "\\*") + "*"):
                    out[k] = c.dump(k)
            finally:
                c.close()
        return out


@pytest.fixture(params=[(b, m) for b in BACKENDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    name, mode = request.param
    with backend.open(name, tmp_path) as store:
        assert isinstance(store, RedisStore)
        run = Runner(store, mode)
        try:
            yield Env(name, store, run)
        finally:
            run.close()


def open_on(s: redis_servers.RedisServer, **options: Any) -> RedisStore:
    store = open_store(s.url, **{"prefix": "t:", **options})
    assert isinstance(store, RedisStore)
    return store


# ---- round trips -----------------------------------------------------------------------------


class Wire:
    """Counts what redis-py writes to sockets: one ``send_packed_command`` = one round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        wire = self
        sync_send = redis.connection.AbstractConnection.send_packed_command
        async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

        def send(self: Any, command: Any, *a: Any, **kw: Any) -> Any:
            wire.record(command)
            return sync_send(self, command, *a, **kw)

        async def asend(self: Any, command: Any, *a: Any, **kw: Any) -> Any:
            wire.record(command)
            return await async_send(self, command, *a, **kw)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
        monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", asend)

    def record(self, command: Any) -> None:
        data = command if isinstance(command, bytes) else b"".join(bytes(c) for c in command)
        self.sent.append(data.split(b"\r\n")[2].decode().upper())  # *N $len NAME ...

    def count(self, run: Runner, op: Op) -> tuple[Any, list[str]]:
        self.sent.clear()
        result = run(op)
        return result, list(self.sent)


@pytest.mark.parametrize("mode", MODES)
def test_round_trips_per_operation_single_server(
    server: redis_servers.RedisServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_on(server)
    run = Runner(store, mode)
    wire = Wire(monkeypatch)
    try:
        # Warm up: open the pooled connection and let the server cache every script.
        run(Create(key("w"), rec(user="w")))
        run(Apply(key("w"), Delta(set={"b": "2"}, meta=meta(user="w")), NOW))
        run(Rename(key("w"), key("w2"), Delta(meta=meta(user="w")), NOW))
        run(ListUser("w", NOW))
        run(Delete(key("w2")))
        run(Load(key("w2"), NOW))

        got: dict[str, list[str]] = {}
        assert wire.count(run, Load(key(1), NOW)) == (None, ["EVALSHA"])
        ok, got["create"] = wire.count(run, Create(key(1), rec({"a": "1", "b": "2"}, user="alice")))
        assert ok is True
        record, got["load"] = wire.count(run, Load(key(1), NOW))
        assert record is not None and record.fields == {"a": "1", "b": "2"}
        delta = Delta(set={"a": "10"}, delete=frozenset({"b"}), meta=meta(now=NOW + 1, user="alice"))
        ok, got["apply"] = wire.count(run, Apply(key(1), delta, NOW + 1))
        assert ok is True
        ok, got["rename"] = wire.count(run, Rename(key(1), key(2), Delta(meta=meta(user="bob")), NOW + 2))
        assert ok is True
        listed, got["list_user"] = wire.count(run, ListUser("bob", NOW + 2))
        assert [k for k, _ in listed] == [key(2)]
        ok, got["delete"] = wire.count(run, Delete(key(2)))
        assert ok is True
        ok, got["apply_missing"] = wire.count(run, Apply(key(2), delta, NOW + 3))
        assert ok is False
        assert got == {
            "create": ["EVALSHA"], "load": ["EVALSHA"], "apply": ["EVALSHA"], "rename": ["EVALSHA"],
            "list_user": ["ZRANGE", "HMGET"], "delete": ["EVALSHA"], "apply_missing": ["EVALSHA"],
        }
        # A server that lost its script cache costs one more round trip, once.
        admin = server.client()
        admin.script_flush()
        admin.close()
        ok, sent = wire.count(run, Create(key(3), rec()))
        assert ok is True and sent == ["EVALSHA", "EVAL"]
        ok, sent = wire.count(run, Create(key(4), rec()))
        assert ok is True and sent == ["EVALSHA"]
        # ... the request path's Load and Apply too (the store sends them itself)
        admin = server.client()
        admin.script_flush()
        admin.close()
        record, sent = wire.count(run, Load(key(3), NOW))
        assert record is not None and sent == ["EVALSHA", "EVAL"]
        ok, sent = wire.count(run, Apply(key(3), Delta(set={"c": "3"}), NOW))
        assert ok is True and sent == ["EVALSHA", "EVAL"]
        record, sent = wire.count(run, Load(key(3), NOW))
        assert record is not None and record.fields["c"] == "3" and sent == ["EVALSHA"]
    finally:
        run.close()
        store.close()


@pytest.mark.parametrize("mode", MODES)
def test_round_trips_in_cluster(cluster: redis_servers.Cluster, mode: str, monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path) -> None:
    with backend.open("redis-cluster", tmp_path) as store:
        run = Runner(store, mode)
        try:
            for c in cluster.clients():  # every node has every script cached
                for script in (lua.LOAD, lua.CREATE, lua.APPLY, lua.DETACH, lua.DROP, lua.ENLIST):
                    c.script_load(script.source)
                c.close()
            run(Count(NOW))  # a pooled connection to every node
            wire = Wire(monkeypatch)
            assert wire.count(run, Load(key(1), NOW))[1] == ["EVALSHA"]
            assert wire.count(run, Create(key(1), rec()))[1] == ["EVALSHA"]
            assert wire.count(run, Apply(key(1), Delta(set={"a": "2"}, meta=meta()), NOW))[1] == ["EVALSHA"]
            assert wire.count(run, Delete(key(1)))[1] == ["EVALSHA"]
            # The user index is in another slot: one more command, before the session write.
            assert wire.count(run, Create(key(2), rec(user="u")))[1] == ["EVALSHA", "EVALSHA"]
            # Rename: enlist, detach, create, then drop the old index member.
            ok, sent = wire.count(run, Rename(key(2), key(3), Delta(meta=meta(user="u")), NOW))
            assert ok is True and sent == ["EVALSHA", "EVALSHA", "EVALSHA", "ZREM"]
            # Delete of a user's session: the script, then the index member.
            assert wire.count(run, Delete(key(3)))[1] == ["EVALSHA", "ZREM"]
        finally:
            run.close()


# ---- Cluster layout and rename -----------------------------------------------------------------


@pytest.fixture(params=MODES)
def cenv(request: pytest.FixtureRequest, cluster: redis_servers.Cluster, tmp_path: Path) -> Iterator[Env]:
    with backend.open("redis-cluster", tmp_path) as store:
        assert isinstance(store, RedisStore)
        run = Runner(store, request.param)
        try:
            yield Env("redis-cluster", store, run)
        finally:
            run.close()


def test_cluster_keeps_a_session_in_one_slot_and_its_index_in_its_own(cenv: Env) -> None:
    env = cenv
    raw = env.raw()
    try:
        user = "we{i}rd}{user\x00"
        for n in range(12):
            assert env.run(Create(key(n), rec({"a": str(n)}, user=user)))
        for n in range(12):
            k = key(n)
            assert raw.keyslot(env.skey(k)) == raw.keyslot(k)
            assert int(raw.execute_command("CLUSTER", "KEYSLOT", env.skey(k))) == raw.keyslot(k)
        index_tag = hashlib.sha256(user.encode()).hexdigest()
        assert raw.keyslot(env.ikey(user)) == raw.keyslot(index_tag)
        assert len({raw.keyslot(env.skey(key(n))) for n in range(12)}) > 1  # really spread out
        assert sorted(k for k, _ in env.run(ListUser(user, NOW))) == sorted(key(n) for n in range(12))
    finally:
        raw.close()


def hook_after(store: RedisStore, script: lua.Script, action: Callable[[], None], nth: int = 1) -> None:
    """Run ``action`` right after the ``nth`` round trip that runs ``script`` (a race, staged)."""
    original = store._io
    seen = [0]

    def io(request: Any) -> Any:
        reply = original(request)
        if isinstance(request, Send) and request.cmds[0][0] in ("EVALSHA", "EVAL") \
                and request.cmds[0][1] in (script.sha, script.source) \
                and not isinstance(reply[0], NoScriptError):  # only a round trip that ran it
            seen[0] += 1
            if seen[0] == nth:
                action()
        return reply

    store._io = io  # type: ignore[method-assign]


@pytest.fixture
def cstores(cluster: redis_servers.Cluster, tmp_path: Path) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two store objects on one prefix of the cluster: two app processes."""
    with backend.open("redis-cluster", tmp_path) as a:
        assert isinstance(a, RedisStore)
        b = open_store(cluster.url, prefix=a.plans.layout.prefix)
        assert isinstance(b, RedisStore)
        try:
            yield a, b
        finally:
            b.close()


def test_cluster_rename_stalled_after_step_one(cstores: tuple[RedisStore, RedisStore]) -> None:
    """The renamer stalls between the steps (here: its own thread runs the racer). An Apply
    waits for the move at most ``move_wait``, then fails as unavailable having written
    nothing; a Load sees the session as it was; a second regenerate fails."""
    a, b = cstores
    impatient = open_store(backend.require_cluster().url, prefix=a.plans.layout.prefix, move_wait=0.02)
    assert isinstance(impatient, RedisStore)
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    results: list[Any] = []

    def racer() -> None:
        with pytest.raises(StoreUnavailable, match="did not finish"):
            impatient.execute(Apply(key(1), Delta(set={"late": "1"}, meta=meta()), NOW))
        results.append(b.execute(Load(key(1), NOW)))
        results.append(b.execute(Rename(key(1), key(3), Delta(), NOW)))  # a second regenerate

    try:
        hook_after(a, lua.DETACH, racer)
        assert a.execute(Rename(key(1), key(2), Delta(set={"b": "2"}), NOW)) is True
    finally:
        impatient.close()
    assert results == [Record({"a": "1"}, meta(user="u")), False]
    got = a.execute(Load(key(2), NOW))
    assert got is not None and got.fields == {"a": "1", "b": "2"}
    assert a.execute(Load(key(1), NOW)) is None and a.execute(Load(key(3), NOW)) is None
    assert [k for k, _ in a.execute(ListUser("u", NOW))] == [key(2)]


WAIT = 20.0  # bound of every wait in the staged races below; never reached when things work


class Point:
    """A moment in another thread's operation: ``seen`` once it got there; held there until
    ``go`` (if ``hold``)."""

    def __init__(self, when: Callable[[Send, Any], bool], hold: bool) -> None:
        self.when = when
        self.seen = threading.Event()
        self.go = threading.Event()
        if not hold:
            self.go.set()

    def wait(self) -> None:
        assert self.seen.wait(WAIT), "the racer never got there"


class Watch:
    """Sees every round trip of one store, both faces (install it before the operations it
    watches start: a running operation keeps the I/O it began with). Its points are passed
    in order: a round trip is checked against the first point not yet seen."""

    def __init__(self, store: RedisStore, when: Callable[[Send, Any], bool] | None = None,
                 hold: bool = False) -> None:
        self.points: list[Point] = []
        if when is not None:
            self.point(when, hold)
        sync_io, async_io = store._io, store._aio

        def check(request: Any, reply: Any) -> None:
            point = next((p for p in self.points if not p.seen.is_set()), None)
            if isinstance(request, Send) and point is not None and point.when(request, reply):
                point.seen.set()
                assert point.go.wait(WAIT)

        def io(request: Any) -> Any:
            reply = sync_io(request)
            check(request, reply)
            return reply

        async def aio(request: Any) -> Any:
            reply = await async_io(request)
            check(request, reply)
            return reply

        store._io = io  # type: ignore[method-assign]
        store._aio = aio  # type: ignore[method-assign]

    def point(self, when: Callable[[Send, Any], bool], hold: bool = False) -> Point:
        self.points.append(Point(when, hold))
        return self.points[-1]

    def wait(self) -> None:
        self.points[0].wait()


def probed(nth: int = 1) -> Callable[[Send, Any], bool]:
    """The racer has looked at a rename's target (its ``nth`` HMGET): it met a tombstone."""
    count = [0]

    def when(request: Send, reply: Any) -> bool:
        count[0] += request.cmds[0][0] == "HMGET"
        return count[0] == nth

    return when


def still_pending(request: Send, reply: Any) -> bool:
    """An APPLY that found nothing (yet) where a rename is taking the session."""
    return request.cmds[0][1] in (lua.APPLY.sha, lua.APPLY.source) and reply[0][0] == 3


@pytest.fixture(params=MODES)
def crace(request: pytest.FixtureRequest,
          cstores: tuple[RedisStore, RedisStore]) -> Iterator[tuple[RedisStore, RedisStore, Runner]]:
    """The renamer (``a``, sync), and a racer store on the same keys with its runner (either face)."""
    a, b = cstores
    run = Runner(b, request.param)
    try:
        yield a, b, run
    finally:
        run.close()


def rename_staging(a: RedisStore, pool: ThreadPoolExecutor, racer: Callable[[], Any], watch: Watch,
                   then: Callable[[], Any] | None = None) -> list[Any]:
    """Between step 1 and step 2 of ``a``'s next rename: start ``racer`` on ``pool`` and hold
    the renamer until the racer got where ``watch`` looks; then run ``then`` (if any)."""
    started: list[Any] = []

    def action() -> None:
        started.append(pool.submit(racer))
        watch.wait()
        if then is not None:
            then()

    hook_after(a, lua.DETACH, action)
    return started


@pytest.mark.parametrize("own_meta", [True, False])
def test_cluster_apply_between_the_steps_lands_in_the_renamed_session(
    crace: tuple[RedisStore, RedisStore, Runner], own_meta: bool,
) -> None:
    a, b, run = crace
    a.execute(Create(key(1), rec({"a": "1", "gone": "1"}, user="u")))
    applied = meta(now=NOW + 1, user="u", info={"by": "apply"})
    moved = meta(now=NOW + 2, user="u", info={"by": "rename"})
    with ThreadPoolExecutor(1) as pool:
        write = Delta(set={"w": "1", "a": "2"}, delete=frozenset({"gone"}), meta=applied)
        started = rename_staging(a, pool, lambda: run(Apply(key(1), write, NOW + 1)), Watch(b, probed()))
        move = Delta(set={"r": "1"}, meta=moved if own_meta else None)
        assert a.execute(Rename(key(1), key(2), move, NOW + 2))
        # It met the tombstone before step 2 (the renamer was held), so it lands before the move:
        assert started[0].result(WAIT) is True
    got = a.execute(Load(key(2), NOW + 2))
    assert got is not None and got.fields == {"a": "2", "w": "1", "r": "1"}
    # The rename's own meta is newer (it would have overwritten this Apply's); else the Apply's.
    assert got.meta == (moved if own_meta else applied)
    assert a.execute(Load(key(1), NOW + 2)) is None
    assert run(Apply(key(1), Delta(set={"later": "1"}), NOW + 3)) is False  # moved: dead now
    assert [k for k, _ in a.execute(ListUser("u", NOW + 2))] == [key(2)]


def test_cluster_load_between_the_steps_sees_the_session(
    crace: tuple[RedisStore, RedisStore, Runner],
) -> None:
    """A request that starts mid-rename: its Load sees the session as it was, and its write,
    also before step 2, lands in the renamed session."""
    a, b, run = crace
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))

    def request() -> Record | None:
        loaded = run(Load(key(1), NOW))
        assert run(Apply(key(1), Delta(set={"w": "1"}), NOW)) is True
        return loaded  # type: ignore[no-any-return]

    with ThreadPoolExecutor(1) as pool:
        # held until the racer has met the tombstone twice: its Load, then its Apply
        started = rename_staging(a, pool, request, Watch(b, probed(2)))
        assert a.execute(Rename(key(1), key(2), Delta(set={"r": "1"}, meta=meta(user="u")), NOW))
        assert started[0].result(WAIT) == Record({"a": "1"}, meta(user="u"))
    got = a.execute(Load(key(2), NOW))
    assert got is not None and got.fields == {"a": "1", "r": "1", "w": "1"}
    assert run(Load(key(1), NOW)) is None  # moved: as after an atomic rename


def test_cluster_load_and_apply_after_step_two_find_the_old_key_dead(
    crace: tuple[RedisStore, RedisStore, Runner], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once step 2 is there the move has happened, whether or not Rename has returned: the
    old key is dead at once (no waiting), as on a single server; the flow's alias leads on."""
    a, _, run = crace
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    for c in backend.require_cluster().clients():  # every node has the scripts cached
        for script in (lua.APPLY, lua.DETACH, lua.CREATE):
            c.script_load(script.source)
        c.close()
    run(Count(NOW))  # a pooled connection to every node
    wire = Wire(monkeypatch)
    seen: list[Any] = []
    write = Apply(key(1), Delta(set={"w": "1"}), NOW)
    hook_after(a, lua.CREATE, lambda: seen.extend([wire.count(run, Load(key(1), NOW)),
                                                   wire.count(run, write)]))
    assert a.execute(Rename(key(1), key(2), Delta(meta=meta(user="u")), NOW))
    assert seen == [(None, ["EVALSHA", "HMGET"]), (False, ["EVALSHA", "HMGET"])]
    got = a.execute(Load(key(2), NOW))
    assert got is not None and got.fields == {"a": "1"}
    # Deleted since (a logout with the new token): the tombstone's followers learn it at once.
    assert a.execute(Delete(key(2))) is True
    assert wire.count(run, write) == (False, ["EVALSHA", "HMGET"])
    assert wire.count(run, Load(key(1), NOW)) == (None, ["EVALSHA", "HMGET"])
    assert a.execute(Count(NOW)) == 0


def test_cluster_delete_while_an_apply_waits_for_the_move(
    crace: tuple[RedisStore, RedisStore, Runner],
) -> None:
    a, b, run = crace
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    deleted: list[bool] = []
    write = Apply(key(1), Delta(set={"w": "1"}, meta=meta(user="u")), NOW)
    with ThreadPoolExecutor(1) as pool:
        started = rename_staging(a, pool, lambda: run(write), Watch(b, probed()),
                                 then=lambda: deleted.append(a.execute(Delete(key(1)))))
        assert a.execute(Rename(key(1), key(2), Delta(meta=meta(user="u")), NOW)) is False
        assert started[0].result(WAIT) is False  # the Delete won: nothing to write into
    assert deleted == [True]
    assert a.execute(Load(key(1), NOW)) is None and a.execute(Load(key(2), NOW)) is None
    assert a.execute(Count(NOW)) == 0 and a.execute(ListUser("u", NOW)) == []


def test_cluster_apply_waiting_on_a_refused_move_lands_in_the_old_key(
    crace: tuple[RedisStore, RedisStore, Runner],
) -> None:
    a, b, run = crace
    a.execute(Create(key(1), rec({"a": "1"})))
    a.execute(Create(key(2), rec({"other": "1"})))
    with ThreadPoolExecutor(1) as pool:
        # held until the racer found key 2 is not the session on its way
        started = rename_staging(a, pool, lambda: run(Apply(key(1), Delta(set={"w": "1"}), NOW)),
                                 Watch(b, still_pending))
        assert a.execute(Rename(key(1), key(2), Delta(set={"r": "1"}), NOW)) is False
        assert started[0].result(WAIT) is True
    got1, got2 = a.execute(Load(key(1), NOW)), a.execute(Load(key(2), NOW))
    assert got1 is not None and got1.fields == {"a": "1", "w": "1"}
    assert got2 is not None and got2.fields == {"other": "1"}  # a stranger's session: untouched


def test_cluster_apply_follows_a_chain_of_moves(crace: tuple[RedisStore, RedisStore, Runner]) -> None:
    """The racer met move 1 -> 2 in flight; before it came back, 1 -> 2 finished and 2 -> 3
    began: it follows to 3 (its meta gives way to the renames')."""
    a, b, run = crace
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    watch = Watch(b)
    first = watch.point(probed(), hold=True)  # the racer is held right after meeting move 1
    second = watch.point(still_pending)  # ... and later waits for step 2 of move 2 at key 3
    with ThreadPoolExecutor(1) as pool:
        started = rename_staging(a, pool, lambda: run(Apply(key(1), Delta(set={"w": "1"}, meta=meta()), NOW)),
                                 watch)
        assert a.execute(Rename(key(1), key(2), Delta(set={"r": "1"}, meta=meta(user="u")), NOW))
        later = meta(now=NOW + 1, user="u")

        def release() -> None:  # let the racer go; hold the renamer until it waits at key 3
            first.go.set()
            second.wait()

        hook_after(a, lua.DETACH, release)  # a new hook counts afresh: this rename's step 1
        assert a.execute(Rename(key(2), key(3), Delta(meta=later), NOW + 1))
        assert started[0].result(WAIT) is True
    got = a.execute(Load(key(3), NOW + 1))
    assert got is not None and got.fields == {"a": "1", "r": "1", "w": "1"} and got.meta == later
    assert a.execute(Load(key(1), NOW + 1)) is None and a.execute(Load(key(2), NOW + 1)) is None
    assert [k for k, _ in a.execute(ListUser("u", NOW + 1))] == [key(3)]


def test_apply_pauses_are_short_and_bounded() -> None:
    pauses = Layout("p:", cluster=True, move_wait=0.25).pauses()
    assert pauses[0] == 0.001 and max(pauses) == 0.05 and sum(pauses) == pytest.approx(0.25)
    assert Layout("p:", cluster=True, move_wait=0).pauses() == []


def test_cluster_delete_between_the_two_steps_kills_the_rename(
    cstores: tuple[RedisStore, RedisStore],
) -> None:
    a, b = cstores
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    deleted: list[bool] = []
    hook_after(a, lua.DETACH, lambda: deleted.append(b.execute(Delete(key(1)))))
    assert a.execute(Rename(key(1), key(2), Delta(), NOW)) is False
    assert deleted == [True]
    assert a.execute(Load(key(1), NOW)) is None and a.execute(Load(key(2), NOW)) is None
    assert a.execute(ListUser("u", NOW)) == []
    assert a.execute(Count(NOW)) == 0


def test_cluster_delete_after_step_two_follows_the_tombstone(cstores: tuple[RedisStore, RedisStore]) -> None:
    a, b = cstores
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    deleted: list[bool] = []
    # after step 2 (the rename's CREATE), before it cleans the old index member
    hook_after(a, lua.CREATE, lambda: deleted.append(b.execute(Delete(key(1)))))
    assert a.execute(Rename(key(1), key(2), Delta(), NOW)) is True
    assert deleted == [True]
    assert a.execute(Load(key(2), NOW)) is None and a.execute(Load(key(1), NOW)) is None
    assert a.execute(Create(key(2), rec())) is False  # the marker holds the key for a while
    assert a.execute(ListUser("u", NOW)) == []


def test_cluster_rename_onto_a_taken_key_restores_the_session(cstores: tuple[RedisStore, RedisStore]) -> None:
    a, _ = cstores
    a.execute(Create(key(1), rec({"a": "1"}, user="u")))
    a.execute(Create(key(2), rec({"other": "1"})))
    assert a.execute(Rename(key(1), key(2), Delta(set={"b": "2"}), NOW)) is False
    got1, got2 = a.execute(Load(key(1), NOW)), a.execute(Load(key(2), NOW))
    assert got1 is not None and got1.fields == {"a": "1"}
    assert got2 is not None and got2.fields == {"other": "1"}
    assert a.execute(Apply(key(1), Delta(set={"c": "3"}), NOW)) is True  # live again


def test_cluster_late_step_two_is_refused(cluster: redis_servers.Cluster, tmp_path: Path) -> None:
    with backend.open("redis-cluster", tmp_path) as s0:
        a = open_store(cluster.url, prefix=s0.plans.layout.prefix, rename_ttl=0.2)  # type: ignore[attr-defined]
        assert isinstance(a, RedisStore)
        try:
            a.execute(Create(key(1), rec()))
            stalled = threading.Event()
            # The process stalls after step 1 for longer than the tombstone lives.
            hook_after(a, lua.DETACH, lambda: stalled.wait(0.6))
            assert a.execute(Rename(key(1), key(2), Delta(), NOW)) is False
            assert a.execute(Load(key(1), NOW)) is None and a.execute(Load(key(2), NOW)) is None
        finally:
            a.close()


def race(*fns: Callable[[], Any]) -> list[Any]:
    """Start ``fns`` together on threads; their results, in order."""
    barrier = threading.Barrier(len(fns))

    def go(fn: Callable[[], Any]) -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(fns)) as pool:
        return [f.result(30) for f in [pool.submit(go, fn) for fn in fns]]


@pytest.mark.parametrize("name", BACKENDS)
def test_rename_racing_apply_and_delete_never_forks_nor_resurrects(name: str, tmp_path: Path) -> None:
    with backend.open(name, tmp_path) as store:
        run = Runner(store, "sync")
        survivors: list[str] = []
        for r in range(15):  # bounded: 15 rounds of each race
            old, new = key(f"o{r}"), key(f"n{r}")
            run(Create(old, rec({"a": "1"}, user="racer")))
            renamed, applied = race(lambda o=old, n=new: run(Rename(o, n, Delta(set={"r": "1"}), NOW)),
                                    lambda o=old: run(Apply(o, Delta(set={"w": "1"}), NOW)))
            at_old, at_new = run(Load(old, NOW)), run(Load(new, NOW))
            assert renamed is True and at_old is None and at_new is not None
            assert at_new.fields.get("r") == "1"
            # An Apply that reported success happened before the move, so the move kept it.
            assert ("w" in at_new.fields) == applied

            old, new = key(f"p{r}"), key(f"q{r}")
            run(Create(old, rec({"a": "1"}, user="racer")))
            renamed, deleted = race(lambda o=old, n=new: run(Rename(o, n, Delta(), NOW)),
                                    lambda o=old: run(Delete(o)))
            assert run(Load(old, NOW)) is None
            if deleted:  # whoever deleted must be right: no copy is live
                assert run(Load(new, NOW)) is None, renamed
            else:  # a single server renames atomically: the delete came too late, and found nothing
                assert name == "redis" and renamed is True and run(Load(new, NOW)) is not None
                survivors.append(new)
        expected = sorted([key(f"n{r}") for r in range(15)] + survivors)
        assert sorted(k for k, _ in run(ListUser("racer", NOW))) == expected
        run.close()


# ---- the user index ------------------------------------------------------------------------


def test_index_heals_missing_and_expired_members(env: Env) -> None:
    raw = env.raw()
    try:
        for n in range(4):
            env.run(Create(key(n), rec(user="alice", ttl=10 if n == 3 else 1800)))
        idx = env.ikey("alice")
        assert raw.zcard(idx) == 4
        # the index lives as long as its longest-lived session can
        assert int(raw.execute_command("PEXPIRETIME", idx)) == ms(NOW + 43200)
        raw.delete(env.skey(key(1)))  # as if Redis had expired it
        later = NOW + 11  # key 3 is expired by the caller's clock
        grace = env.store.plans.layout.index_grace if env.name == "redis-cluster" else 0
        got = env.run(ListUser("alice", later))
        assert [k for k, _ in got] == sorted([key(0), key(2)])
        members = {m.decode() for m in raw.zrange(idx, 0, -1)}
        if grace:  # a member with no session may be a write in flight: kept until old enough
            assert members == {key(0), key(1), key(2)}
            assert [k for k, _ in env.run(ListUser("alice", NOW + grace + 1))] == sorted([key(0), key(2)])
            members = {m.decode() for m in raw.zrange(idx, 0, -1)}
        assert members == {key(0), key(2)}
        # a session that changed user in place (login without regenerate) moves index
        assert env.run(Apply(key(0), Delta(meta=meta(user="bob")), NOW))
        assert [k for k, _ in env.run(ListUser("bob", NOW))] == [key(0)]
        assert [k for k, _ in env.run(ListUser("alice", NOW + grace + 1))] == [key(2)]
        assert {m.decode() for m in raw.zrange(idx, 0, -1)} == {key(2)}
        assert env.run(Delete(key(2)))
        assert raw.zcard(idx) == 0
    finally:
        raw.close()


def test_index_expiry_follows_a_later_absolute_end_and_is_left_alone_otherwise(env: Env) -> None:
    """A write by the same user with the same absolute end touches no index (its score, the
    time the member joined, stays); a later absolute end (remember-me) extends the index."""
    raw = env.raw()
    try:
        idx = env.ikey("carol")
        assert env.run(Create(key(0), rec(user="carol")))
        joined = raw.zscore(idx, key(0))
        assert int(raw.execute_command("PEXPIRETIME", idx)) == ms(NOW + 43200)
        same = Meta(created_at=NOW, last_seen=NOW + 5, expires_at=NOW + 1805, absolute_at=NOW + 43200,
                    user_id="carol")
        assert env.run(Apply(key(0), Delta(set={"a": "2"}, meta=same), NOW + 5))
        assert raw.zscore(idx, key(0)) == joined
        later = Meta(created_at=NOW, last_seen=NOW + 6, expires_at=NOW + 1806, absolute_at=NOW + 90000,
                     user_id="carol")
        assert env.run(Apply(key(0), Delta(meta=later), NOW + 6))
        assert int(raw.execute_command("PEXPIRETIME", idx)) == ms(NOW + 90000)
        assert [k for k, _ in env.run(ListUser("carol", NOW + 6))] == [key(0)]
        # leaving the user drops the member and the session's index entries
        assert env.run(Apply(key(0), Delta(meta=meta(now=NOW + 7)), NOW + 7))
        assert raw.zcard(idx) == 0
        assert raw.hmget(env.skey(key(0)), "x", "xe") == [None, None]
    finally:
        raw.close()


def test_a_plain_write_is_three_commands_inside_redis(
    server: redis_servers.RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common write (same user, fields and sliding expiry) runs HMGET, one HSET and
    PEXPIREAT in the script, and nothing on the user index."""
    store = open_on(server)
    admin = server.client()
    try:
        assert store.execute(Create(key(1), rec(user="dave")))
        store.execute(Apply(key(1), Delta(set={"a": "2"}, meta=meta(user="dave")), NOW))  # warm
        admin.config_resetstat()
        same = Meta(created_at=NOW, last_seen=NOW + 1, expires_at=NOW + 1801, absolute_at=NOW + 43200,
                    user_id="dave")
        delta = Delta(set={"a": "3", "b": "4"}, meta=same)
        assert store.execute(Apply(key(1), delta, NOW + 1))
        stats = admin.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
        calls.pop("info", None)
        calls.pop("config|resetstat", None)
        assert calls == {"evalsha": 1, "hmget": 1, "hset": 1, "pexpireat": 1}
    finally:
        admin.close()
        store.close()


def test_hostile_user_ids_are_safe(env: Env) -> None:
    users = ["{", "}", "a}{b", "\x00", "x" * 5000, "ü🍪\u202e", "*", "u:{x}", "\ud800"]
    for n, u in enumerate(users):
        assert env.run(Create(key(n), rec(user=u)))
    for n, u in enumerate(users):
        got = env.run(ListUser(u, NOW))
        assert [(k, m.user_id) for k, m in got] == [(key(n), u)]
    assert len([k for k in env.all_keys() if b"u:{" in k]) == len(users)


# ---- hostile input ---------------------------------------------------------------------------


def test_awkward_fields_round_trip_and_touch_nothing_else(env: Env) -> None:
    neighbour = Record({"n": '"neighbour"'}, meta(user="n", info={"ip": "1"}))
    env.run(Create(key("neighbour"), neighbour))
    raw = env.raw()
    canary = f"{env.prefix}canary".encode()
    raw.set(canary, b"\x00keep")
    before = env.all_keys()
    before.pop(canary)
    fields = {
        "m": '"not meta"', "e": "0", "x": '"not an index"', "t": '"not a tombstone"', "d": "1",
        "f:a": '"prefixed twice"', "": '""', "}{": '"braces"', "*?[": '"glob"',
        "quo'te\"": '"it\'s \\"quoted\\""', "nul\x00": '"a\\u0000b"', "\x00": "\x00",
        "ünï ✓ 🍪 \u202e \u0301 \uffff \U0010ffff": '"ünï 🍪"', "lone": "\ud800", "\udfff": '"x"',
        "big": '"' + "x" * 1_000_000 + '"', "crlf\r\n*3\r\n": '"\r\n$4\r\nPING\r\n"',
    }
    m = meta(user="ü{}\x00", info={"ua": "Mozilla \"quoted\" \x00 🍪", "ip": "::1"})
    assert env.run(Create(key(1), Record(fields, m)))
    got = env.run(Load(key(1), NOW))
    assert got == Record(fields, m)
    delta = Delta(set={"big": '"' + "y" * 1_000_000 + '"', "e": "1", "new\x00": '"n"'},
                  delete=frozenset({"m", "\x00", "lone"}), meta=meta(now=NOW + 1, user="ü{}\x00"))
    assert env.run(Apply(key(1), delta, NOW + 1))
    expected = {k: v for k, v in fields.items() if k not in delta.delete} | dict(delta.set)
    got = env.run(Load(key(1), NOW + 1))
    assert got is not None and got.fields == expected and got.meta == delta.meta
    after = env.all_keys()
    assert after.pop(canary) is not None and raw.get(canary) == b"\x00keep"
    for k in (env.skey(key(1)), env.ikey("ü{}\x00")):
        before.pop(k, None)
        after.pop(k, None)
    assert after == before  # the neighbour session and its index are byte-for-byte unchanged
    assert env.run(Load(key("neighbour"), NOW)) == neighbour
    raw.close()


def test_many_fields_in_one_write(env: Env) -> None:
    fields = {f"k{i}": str(i) for i in range(2500)}
    assert env.run(Create(key(1), Record(fields, meta())))
    gone = frozenset(f"k{i}" for i in range(0, 2500, 2))
    assert env.run(Apply(key(1), Delta(set={f"n{i}": "1" for i in range(1200)}, delete=gone), NOW))
    got = env.run(Load(key(1), NOW))
    assert got is not None
    added = {f"n{i}": "1" for i in range(1200)}
    assert got.fields == {k: v for k, v in fields.items() if k not in gone} | added


def test_junk_in_a_session_key_is_never_adopted(env: Env) -> None:
    raw = env.raw()
    try:
        raw.hset(env.skey(key(1)), mapping={"e": str(NOW + 100), "m": "{not json", "f:a": "1"})
        raw.set(env.skey(key(2)), "a string")
        raw.hset(env.skey(key(3)), mapping={"f:a": "1"})  # no meta at all
        for n in (1, 3):
            assert env.run(Load(key(n), NOW)) is None
        with pytest.raises(StoreError):  # a string where a hash belongs: WRONGTYPE
            env.run(Load(key(2), NOW))
        assert env.run(Apply(key(3), Delta(set={"a": "2"}), NOW)) is False
    finally:
        raw.close()


def test_count_and_purge_stay_inside_their_prefix(env: Env, tmp_path: Path) -> None:
    # A prefix with glob characters must not match its neighbours' keys.
    url = backend.URL if env.name == "redis" else backend.require_cluster().url
    glob = open_store(url, prefix=env.prefix + "*?[a]\\")
    try:
        for n in range(3):
            env.run(Create(key(n), rec(ttl=10)))
        glob.execute(Create(key(9), rec(ttl=10)))
        assert env.run(Count(NOW)) == 3 and glob.execute(Count(NOW)) == 1
        assert glob.execute(Purge(NOW + 20, 1)) == 1
        assert env.run(Count(NOW)) == 3
        assert env.run(Purge(NOW + 20, 1)) == 3
    finally:
        glob.close()


def test_lost_script_cache_is_reloaded_on_every_node(env: Env) -> None:
    for n in range(6):
        env.run(Create(key(n), rec({"a": "1"}, user="u", ttl=10 if n < 3 else 1800)))
    for c in backend.primaries(env.name):
        c.script_flush()
        c.close()
    assert env.run(Apply(key(3), Delta(set={"b": "2"}, meta=meta(user="v")), NOW))
    assert env.run(Rename(key(4), key(40), Delta(set={"c": "3"}), NOW))
    listed = [k for k, _ in env.run(ListUser("u", NOW + 100))]  # heals three expired members
    assert listed == sorted([key(5), key(40)])
    assert env.run(Purge(NOW + 100, 2)) == 3  # pipelines of scripts, each node reloading
    assert env.run(Count(NOW + 100)) == 3
    assert env.run(Delete(key(40))) and env.run(Delete(key(3)))
    assert [k for k, _ in env.run(ListUser("u", NOW + 100))] == [key(5)]


# ---- outages ---------------------------------------------------------------------------------


def bounded(fn: Callable[[], Any], seconds: float = 30) -> Any:
    """Run ``fn`` in a thread; a hang fails the test instead of blocking the run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=seconds)


def expect_unavailable(run: Runner, op: Op) -> None:
    def call() -> None:
        with pytest.raises(StoreUnavailable):
            run(op)

    bounded(call)


def every_op(n: int) -> list[Op]:
    return [
        Load(key(1), NOW), Create(key(100 + n), rec()), Apply(key(1), Delta(set={"a": "x"}), NOW),
        Rename(key(1), key(200 + n), Delta(), NOW), Delete(key(1)), ListUser("u", NOW),
        Count(NOW), Purge(NOW, 10),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_dead_server_raises_unavailable_and_the_same_store_recovers(
    server: redis_servers.RedisServer, mode: str
) -> None:
    store = open_on(server, socket_timeout=1, connect_timeout=1)
    run = Runner(store, mode)
    try:
        for n in range(1, 4):
            assert run(Create(key(n), rec({"a": str(n)}, user="u")))
        server.kill()
        for op in every_op(0):
            expect_unavailable(run, op)
        server.start()  # same port, same append-only file
        got = run(Load(key(1), NOW))
        assert got is not None and got.fields == {"a": "1"}
        assert run(Apply(key(2), Delta(set={"b": "2"}), NOW))
        assert [k for k, _ in run(ListUser("u", NOW))] == sorted(key(n) for n in range(1, 4))
        assert run(Count(NOW)) == 3
    finally:
        run.close()
        store.close()


@pytest.mark.parametrize("mode", MODES)
def test_hung_server_times_out_as_unavailable(server: redis_servers.RedisServer, mode: str) -> None:
    store = open_on(server, socket_timeout=0.5, connect_timeout=0.5)
    run = Runner(store, mode)
    try:
        assert run(Create(key(1), rec()))
        server.pause()
        try:
            for op in every_op(0)[:3]:  # bounded: three timeouts
                expect_unavailable(run, op)
        finally:
            server.resume()
        assert run(Load(key(1), NOW)) is not None
        assert run(Apply(key(1), Delta(set={"b": "2"}), NOW))
    finally:
        run.close()
        store.close()


@pytest.mark.parametrize("mode", MODES)
def test_read_only_replica_is_unavailable_for_writes(
    server: redis_servers.RedisServer, mode: str, tmp_path: Path
) -> None:
    replica = redis_servers.RedisServer(tmp_path / "replica", "--replicaof", "127.0.0.1", str(server.port))
    replica.start()
    store = open_on(server)
    on_replica = open_on(replica)
    run, rrun = Runner(store, mode), Runner(on_replica, mode)
    try:
        assert run(Create(key(1), rec()))
        redis_servers._wait("replication", lambda: rrun(Load(key(1), NOW)) is not None)  # reads work
        for op in [Create(key(2), rec()), Apply(key(1), Delta(set={"b": "1"}), NOW), Delete(key(1))]:
            expect_unavailable(rrun, op)
    finally:
        rrun.close()
        run.close()
        on_replica.close()
        store.close()
        replica.stop()


def test_wrong_password_is_a_store_error_not_unavailable(tmp_path: Path) -> None:
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    s = redis_servers.RedisServer(tmp_path / "auth", "--requirepass", "right").start()
    try:
        store = open_store(f"redis://:wrong@127.0.0.1:{s.port}/0")
        with pytest.raises(StoreError) as info:
            store.execute(Load(key(1), NOW))
        assert not isinstance(info.value, StoreUnavailable)
        store.close()
        good = open_store(f"redis://:right@127.0.0.1:{s.port}/0")
        assert good.execute(Load(key(1), NOW)) is None
        good.close()
    finally:
        s.stop()


def test_cluster_outage_and_recovery_with_the_same_store(tmp_path: Path) -> None:
    """A master of a (throwaway) cluster dies: its slots' ops fail as unavailable; once it is
    back with its data, the same store object works again."""
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    c = redis_servers.Cluster(tmp_path / "cl")
    for s in c.servers:
        s.persistent = True
    try:
        c.start()
    except RuntimeError as exc:
        require_service("Redis Cluster", str(exc))
    store = open_store(c.url, prefix="o:", socket_timeout=1, connect_timeout=1)
    try:
        raw = redis.RedisCluster(host="127.0.0.1", port=c.servers[0].port)
        keys = [key(n) for n in range(30)]
        for k in keys:
            assert store.execute(Create(k, rec({"a": k[:4]})))
        victim = c.servers[1]
        victim_keys = [k for k in keys if raw.get_node_from_key(f"o:{{{k}}}").port == victim.port]
        raw.close()
        assert victim_keys
        victim.kill()
        for op in [Load(victim_keys[0], NOW), Apply(victim_keys[0], Delta(set={"b": "1"}), NOW),
                   Delete(victim_keys[0])]:
            with pytest.raises(StoreUnavailable):
                bounded(lambda op=op: store.execute(op))
        victim.start()

        def healthy() -> bool:
            try:
                return store.execute(Load(victim_keys[0], NOW)) is not None
            except StoreUnavailable:
                return False

        redis_servers._wait("cluster recovery", healthy)
        for k in keys:
            got = store.execute(Load(k, NOW))
            assert got is not None and got.fields == {"a": k[:4]}
        assert store.execute(Apply(victim_keys[0], Delta(set={"b": "1"}), NOW))
    finally:
        store.close()
        c.stop()


@pytest.mark.parametrize("exc", [
    redis.ConnectionError("refused"), redis.TimeoutError("slow"), ClusterDownError("CLUSTERDOWN"),
    TryAgainError("TRYAGAIN"), ReadOnlyError("READONLY"), redis.exceptions.BusyLoadingError("LOADING"),
    redis.exceptions.MasterDownError("MASTERDOWN"), redis.exceptions.SlotNotCoveredError("slot"),
])
def test_failover_errors_are_unavailable(exc: Exception) -> None:
    err = translate(exc)
    assert isinstance(err, StoreUnavailable) and err.__cause__ is exc


@pytest.mark.parametrize("exc", [ResponseError("WRONGTYPE"), redis.exceptions.OutOfMemoryError("OOM"),
                                 redis.exceptions.AuthenticationError("nope")])
def test_other_errors_are_store_errors(exc: Exception) -> None:
    err = translate(exc)
    assert type(err) is StoreError and err.__cause__ is exc


# ---- URLs --------------------------------------------------------------------------------


def test_rediss_url_makes_tls_connections() -> None:
    store = open_store("rediss://us%40er:p%40ss@cache.invalid:6380/2?prefix=app:&socket_timeout=1.5",
                       ssl_ca_certs="/etc/ssl/ca.pem")
    assert isinstance(store, RedisStore)
    pool = store._sync_client().connection_pool
    assert pool.connection_class is redis.connection.SSLConnection
    kw = pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == ("cache.invalid", 6380, 2)
    assert (kw["username"], kw["password"]) == ("us@er", "p@ss")
    tls = (kw["ssl_ca_certs"], kw["ssl_cert_reqs"], kw["ssl_check_hostname"])
    assert tls == ("/etc/ssl/ca.pem", "required", True)
    assert kw["socket_timeout"] == 1.5 and store.plans.layout.prefix == "app:"

    async def async_face() -> None:
        apool = store._async_client().connection_pool
        assert apool.connection_class is redis.asyncio.connection.SSLConnection
        assert apool.connection_kwargs["ssl_cert_reqs"] == "required"
        await store.aclose()

    asyncio.run(async_face())
    plain = open_store("redis://cache.invalid")
    assert plain._sync_client().connection_pool.connection_class is redis.connection.Connection  # type: ignore[attr-defined]
    plain.close()


def test_rediss_cluster_url_makes_tls_nodes() -> None:
    store = open_store("rediss+cluster://a.invalid:7000,[::1]:7001", ssl_cert_reqs="none")
    assert isinstance(store, RedisStore) and store.kind == "cluster"
    assert store.hosts == [("a.invalid", 7000), ("::1", 7001)]

    async def async_face() -> None:
        nodes = store._async_client().nodes_manager.startup_nodes.values()
        assert {n.connection_class for n in nodes} == {redis.asyncio.connection.SSLConnection}
        assert {n.connection_kwargs["ssl_check_hostname"] for n in nodes} == {False}
        await store.aclose()

    asyncio.run(async_face())


def test_sentinel_and_valkey_urls_parse() -> None:
    s = open_store("redis+sentinel://:pw@s1.invalid,s2.invalid:26380/my%20master/3", sentinel_password="sp")
    assert isinstance(s, RedisStore)
    assert (s.kind, s.hosts, s.service, s.db) == (
        "sentinel", [("s1.invalid", 26379), ("s2.invalid", 26380)], "my master", 3)
    assert s.connection_kwargs["password"] == "pw" and s.sentinel_kwargs["password"] == "sp"
    v = open_store("valkey://v.invalid:7777/1")
    assert isinstance(v, RedisStore) and (v.kind, v.hosts, v.db) == ("single", [("v.invalid", 7777)], 1)


@pytest.mark.parametrize(("url", "options"), [
    ("redis://a.invalid,b.invalid", {}),
    ("redis://a.invalid/zero", {}),
    ("redis://a.invalid:notaport", {}),
    ("redis://", {}),
    ("redis+cluster://a.invalid:7000/1", {}),
    ("redis+sentinel://s.invalid", {}),
    ("redis://a.invalid", {"prefix": "a{b}:"}),
    ("redis://a.invalid", {"prefix": ""}),
    ("redis://a.invalid", {"decode_responses": True}),
    ("redis://a.invalid?socket_timeout=soon", {}),
    ("redis://a.invalid", {"max_connections": 0}),
])
def test_bad_urls_and_options_are_config_errors(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        open_store(url, **options)


# ---- Sentinel ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sentinel_store_works(tmp_path: Path, mode: str) -> None:
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    setup = redis_servers.SentinelSetup(tmp_path).start()
    store = open_store(setup.url, prefix="s:")
    run = Runner(store, mode)
    try:
        assert run(Create(key(1), rec({"a": "1"}, user="u")))
        assert run(Apply(key(1), Delta(set={"b": "2"}), NOW))
        assert run(Rename(key(1), key(2), Delta(), NOW))
        got = run(Load(key(2), NOW))
        assert got is not None and got.fields == {"a": "1", "b": "2"}
        assert [k for k, _ in run(ListUser("u", NOW))] == [key(2)]
        master = setup.master.client()
        assert master.exists(f"s:{{{key(2)}}}") == 1  # it really went to the master
        master.close()
    finally:
        run.close()
        store.close()
        setup.stop()


# ---- misc --------------------------------------------------------------------------------


def test_async_faces_share_one_client_per_loop(server: redis_servers.RedisServer) -> None:
    store = open_on(server)

    async def use() -> tuple[Any, Any]:
        await store.aexecute(Create(key(1), rec()))
        first = store._async
        await asyncio.gather(*(store.aexecute(Load(key(1), NOW)) for _ in range(20)))
        assert store._async is first
        await store.aclose()
        return first, store._async

    first, after = asyncio.run(use())
    assert first is not None and after is None
    assert store.execute(Load(key(1), NOW)) is not None  # the sync face reconnects on its own
    store.close()


def test_index_sizes_stay_bounded_under_churn(env: Env) -> None:
    """Log in and out many times: the index never keeps more than the live sessions."""
    raw = env.raw()
    try:
        counts = collections.Counter[int]()
        for n in range(30):
            k = key(f"churn{n}")
            env.run(Create(k, rec(user="churner")))
            env.run(Delete(k))
            counts[raw.zcard(env.ikey("churner"))] += 1
        assert set(counts) == {0}
    finally:
        raw.close()


def test_a_busy_pool_waits_by_default_and_then_says_busy_not_down(tmp_path: Path) -> None:
    """Issue 16: every connection busy is a wait (bounded), then a 503 that says "busy", with
    the address and without the password. (Was: the default pool shed such requests at once.)
    The burst itself is in tests/stores/test_burst.py."""
    if not redis_servers.have_redis_server():
        require_service("redis-server", "the binary is not on PATH")
    secret = "pw-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    server = redis_servers.RedisServer(tmp_path / "redis", "--requirepass", secret).start()
    url = f"redis://:{secret}@127.0.0.1:{server.port}/0"
    try:
        assert RedisStore(hosts=[("h", 1)]).pool_timeout > 0  # the default waits
        store = open_store(url, prefix="t:", max_connections=1, pool_timeout=0.2)
        assert isinstance(store, RedisStore)
        try:
            assert store._gate.acquire(blocking=False)  # the one slot is taken
            try:
                with pytest.raises(StoreUnavailable) as info:
                    store.execute(Load(key(1), NOW))
            finally:
                store._gate.release()
            text = str(info.value)
            assert "busy" in text and "1 connections" in text and "unavailable" not in text
            assert f"127.0.0.1:{server.port}" in text and secret not in text and secret not in repr(store)
            assert store.execute(Load(key(1), NOW)) is None  # the slot is free again
        finally:
            store.close()
        patient = open_store(url, prefix="t:", max_connections=1, pool_timeout=60)
        assert isinstance(patient, RedisStore)
        try:  # a waiter gets the slot when it is given back, with no error
            assert patient._gate.acquire(blocking=False)
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(patient.execute, Load(key(1), NOW))
                patient._gate.release()
                assert waiting.result(timeout=60) is None
        finally:
            patient.close()
        shedding = open_store(url, prefix="t:", max_connections=1, pool_timeout=0)
        try:
            assert shedding._gate.acquire(blocking=False)  # type: ignore[attr-defined]
            with pytest.raises(StoreUnavailable, match="busy"):
                shedding.execute(Load(key(1), NOW))
        finally:
            shedding.close()
    finally:
        server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_a_connection_closed_under_a_command_is_unavailable_not_a_crash(
    server: redis_servers.RedisServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/soak.py found it (Cluster restart, asyncio): redis-py closed connections other
    commands were using, which failed with an AttributeError inside redis-py: a 500. It is a
    lost connection: StoreUnavailable (a 503). Other AttributeErrors stay what they are."""
    store = open_on(server)
    run = Runner(store, mode)
    try:
        assert run(Load(key(1), NOW)) is None
        closed = AttributeError("'NoneType' object has no attribute 'writelines'")

        def fail(*args: Any) -> Any:
            raise closed

        async def afail(*args: Any) -> Any:
            raise closed

        # one server: the store's own wire does the I/O (a Cluster goes through _io_now/_aio_now)
        if mode == "sync":
            monkeypatch.setattr(SyncWire, "call", fail)
        else:
            monkeypatch.setattr(AsyncWire, "call", afail)
        with pytest.raises(StoreUnavailable, match="connection closed while in use"):
            run(Load(key(1), NOW))
        closed = AttributeError("a bug of ours")
        with pytest.raises(AttributeError, match="a bug of ours"):
            run(Load(key(1), NOW))
        monkeypatch.undo()
        assert run(Load(key(1), NOW)) is None
    finally:
        run.close()
        store.close()
