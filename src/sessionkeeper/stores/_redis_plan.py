"""The Redis store's logic, free of I/O: every operation is a generator ("plan") that yields
:class:`Send` requests (one round trip each: a command, or a pipeline of commands) and gets
the replies back. :func:`drive_sync` and :func:`drive_async` run a plan against a redis-py
client; they are the only code that differs between the sync and async faces.

Round trips per operation (single server): Load 1, Create 1, Apply 1, Rename 1, Delete 1,
ListUser 2-3 (index, the sessions' metas as one pipeline, and a heal if members were stale).
A script whose SHA the server has not cached (restart, SCRIPT FLUSH) costs one more, once.

Cluster
=======
A session's keys share its slot, so Load, Create, Apply and Delete stay one atomic script.
The user index lives in its own slot; its writes are separate commands, ordered so that the
index is a superset of the user's sessions: it gains a member *before* the session is written
(Create, Rename) and loses it only *after* the session is gone (Delete, Rename). A crash in
between leaves a stale member, which the next ListUser drops (it checks every member). The
one case that adds after the write is an Apply that changes a session's user in place
(login without regenerate), because only the script learns the previous user.

Rename cannot be one script in a Cluster: old and new keys are in different slots. It moves
in two steps:

    1. DETACH on the old slot, atomically: if the session is live, copy it out and turn the
       key into a *tombstone* (no ``e``, ``t`` = new storage key, TTL ``rename_ttl``).
    2. CREATE on the new slot with the copied data and the delta, only if the new key is free
       and the server clock is before the tombstone's deadline (step 1's server time + TTL).

Why it is safe:
- Never two live copies: a tombstone is not live (no ``e``), and step 2 only writes after
  step 1 succeeded. If step 2 fails with an unknown outcome (timeout), nothing is undone:
  restoring could make a second copy. The user loses the session; never gains a twin.
- A concurrent Apply to the old key after step 1 fails: it needs ``e``. A second Rename of
  the same old key fails the same way, so two regenerates cannot fork a session.
- Delete racing a rename. Delete of the old key finds either the live session (before step 1:
  deleted; step 1 then fails and the rename returns False), or a tombstone. For a tombstone
  Delete runs KILL on the target: it deletes whatever is there and leaves a *marker*
  (``d``, TTL ``2 * rename_ttl``), then deletes the tombstone. If step 2 already ran, its
  session is deleted; if it has not, the marker makes the key taken, so step 2 fails. Step 2
  arriving after the marker expired is refused by its deadline, which is earlier (the marker
  is written after the tombstone and lives twice as long; this assumes cluster node clocks
  agree to within ``rename_ttl``). So when Delete returns True, no copy is live.
- Step 2 refused (key taken, marker, deadline): RESTORE turns the tombstone back, but only
  if the old key still holds this rename's tombstone. A Delete that raced it deletes the old
  key unconditionally as its last step, so a restore cannot outlive that Delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core import ids
from ..core.records import Delta, Meta, Record
from ..errors import StoreError, StoreUnavailable
from . import _redis_lua as lua

T = TypeVar("T")
Arg: TypeAlias = bytes | str | int


@dataclass(frozen=True, slots=True)
class Send:
    """One round trip: one command, or several sent as one (non-transactional) pipeline.

    The reply is a list, one entry per command; an entry may be an exception object for a
    command the server refused inside a pipeline. ``node`` targets one Cluster primary (SCAN).
    """

    cmds: tuple[tuple[Arg, ...], ...]
    node: Any = None


@dataclass(frozen=True, slots=True)
class Nodes:
    """-> the primaries to SCAN: ``[None]`` for a single server, Cluster nodes otherwise."""


Request: TypeAlias = Send | Nodes
Plan: TypeAlias = Generator[Request, Any, T]
REDIS_ERRORS = (RedisError, RedisClusterException)


def translate(exc: BaseException) -> StoreError:
    """The sessionkeeper error for a redis-py error: unreachable or failing over -> 503."""
    if isinstance(exc, AuthenticationError | AuthorizationError):
        err: StoreError = StoreError(f"redis refused the credentials: {exc}")
    elif isinstance(
        exc,
        RedisConnectionError | RedisTimeoutError | ClusterDownError | ClusterError | TryAgainError
        | ReadOnlyError | RedisClusterException,
    ):
        err = StoreUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}")
    else:
        err = StoreError(f"redis error: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def drive_sync(plan: Plan[T], io: Callable[[Request], Any]) -> T:
    """Run ``plan``, doing each request with ``io``; redis errors go back in translated."""
    try:
        request = next(plan)
        while True:
            try:
                reply = io(request)
            except REDIS_ERRORS as exc:
                request = plan.throw(translate(exc))
            else:
                request = plan.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


async def drive_async(plan: Plan[T], io: Callable[[Request], Awaitable[Any]]) -> T:
    """:func:`drive_sync` for an async ``io``."""
    try:
        request = next(plan)
        while True:
            try:
                reply = await io(request)
            except REDIS_ERRORS as exc:
                request = plan.throw(translate(exc))
            else:
                request = plan.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


# ---- encoding ----------------------------------------------------------------------------


def _b(text: str) -> bytes:
    # surrogatepass: a str Python can hold round-trips, even a lone surrogate
    return text.encode("utf-8", "surrogatepass")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _ms(t: float) -> int:
    if not math.isfinite(t):
        raise StoreError(f"cannot store a session expiring at {t!r}")
    return math.ceil(t * 1000)


def _num(t: float) -> bytes:
    return repr(float(t)).encode()


def _check(reply: Any) -> Any:
    if isinstance(reply, BaseException):
        raise translate(reply)
    return reply


def _meta_json(meta: Meta) -> bytes:
    return json.dumps(meta.to_dict(), separators=(",", ":")).encode()


def _field_args(delete: Collection[str], set_: Mapping[str, str]) -> list[Arg]:
    out: list[Arg] = [len(delete)]
    out += [b"f:" + _b(name) for name in delete]
    for name, value in set_.items():
        out += (b"f:" + _b(name), _b(value))
    return out


def parse_hash(data: Mapping[bytes, bytes], now: float) -> tuple[Record, bytes] | None:
    """The live record in a session hash (and its index key, b'' if none), else ``None``.

    Missing, expired, tombstones, markers and anything unreadable are all "no session": a
    value the store cannot vouch for is never adopted.
    """
    try:
        e = data.get(b"e")
        if e is None or float(e) <= now:
            return None
        meta = Meta.from_dict(json.loads(data[b"m"]))
        fields = {_s(k[2:]): _s(v) for k, v in data.items() if k.startswith(b"f:")}
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return Record(fields, meta), data.get(b"x", b"")


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _scan_reply(reply: Any) -> tuple[int, list[bytes]]:
    cursor, keys = reply
    if isinstance(cursor, dict):  # RedisCluster answers per node: {node name: cursor}
        cursor = next(iter(cursor.values()))
    return int(cursor), list(keys)


# ---- plans -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names and policy of one store: the only state the plans need."""

    prefix: str
    cluster: bool
    rename_ttl: float = 30.0  # seconds a Cluster rename's tombstone lives
    index_grace: float = 60.0  # Cluster: age before a member with no session may be dropped

    def session(self, key: str) -> bytes:
        return _b(f"{self.prefix}{{{key}}}")

    def index(self, user_id: str) -> bytes:
        # Hashing makes any user id (braces, NULs, 10 kB) a fixed, tag-safe key.
        return _b(f"{self.prefix}u:{{{hashlib.sha256(_b(user_id)).hexdigest()}}}")

    def pattern(self) -> bytes:
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return _b(escaped + "{" + "?" * ids.KEY_LENGTH + "}")


class RedisPlans:
    """Builds the plan for each store operation."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.local = b"0" if layout.cluster else b"1"

    # -- helpers --

    def script(self, script: lua.Script, keys: list[bytes], args: list[Arg]) -> Plan[Any]:
        """EVALSHA, and EVAL if the server lost the script: one round trip, rarely two."""
        tail = (len(keys), *keys, *args)
        reply = (yield Send((("EVALSHA", script.sha, *tail),)))[0]
        if isinstance(reply, NoScriptError):
            reply = (yield Send((("EVAL", script.source, *tail),)))[0]
        return _check(reply)

    def scripts(self, calls: list[tuple[lua.Script, list[bytes], list[Arg]]]) -> Plan[list[Any]]:
        """Several script calls as one pipeline, re-sending the NOSCRIPT ones with EVAL."""
        replies = list((yield Send(tuple(
            ("EVALSHA", s.sha, len(k), *k, *a) for s, k, a in calls
        ))))
        lost = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if lost:
            again = yield Send(tuple(
                ("EVAL", calls[i][0].source, len(calls[i][1]), *calls[i][1], *calls[i][2])
                for i in lost
            ))
            for i, r in zip(lost, again, strict=True):
                replies[i] = r
        return [_check(r) for r in replies]

    def soft(self, plan: Plan[Any]) -> Plan[None]:
        """Best-effort index upkeep after the real write: a stale member heals on read."""
        with contextlib.suppress(StoreError):
            yield from plan

    def command(self, *args: Arg) -> Plan[Any]:
        return _check((yield Send((args,)))[0])

    def _header(
        self, *, now: float | None, member: str, meta: Meta | None, x: bytes, score: float,
        extra: Arg = b"",
    ) -> list[Arg]:
        return [
            b"" if now is None else _num(now),
            member,
            b"" if meta is None else _meta_json(meta),
            b"" if meta is None else _num(meta.expires_at),
            b"" if meta is None else _ms(meta.expires_at),
            x,
            _num(score),
            b"" if meta is None else _ms(max(meta.expires_at, meta.absolute_at)),
            self.local,
            extra,
        ]

    def _index_of(self, meta: Meta | None) -> bytes:
        return b"" if meta is None or meta.user_id is None else self.layout.index(meta.user_id)

    def _enlist(self, x: bytes, member: str, score: float, meta: Meta) -> Plan[Any]:
        expiry = _ms(max(meta.expires_at, meta.absolute_at))
        return self.script(lua.ENLIST, [x], [_num(score), member, expiry])

    # -- operations --

    def load(self, key: str, now: float) -> Plan[Record | None]:
        if not ids.is_valid_key(key):
            return None
        data = yield from self.command("HGETALL", self.layout.session(key))
        found = parse_hash(data, now)
        return None if found is None else found[0]

    def create(self, key: str, record: Record) -> Plan[bool]:
        if not ids.is_valid_key(key):
            return False
        meta = record.meta
        x = self._index_of(meta)
        keys = [self.layout.session(key)]
        if x and not self.layout.cluster:
            keys.append(x)
        elif x:
            yield from self._enlist(x, key, meta.last_seen, meta)
        header = self._header(now=None, member=key, meta=meta, x=x, score=meta.last_seen)
        reply = yield from self.script(lua.CREATE, keys, header + _field_args(frozenset(), record.fields))
        return bool(reply[0] == 1)

    def apply(self, key: str, delta: Delta, now: float) -> Plan[bool]:
        if not ids.is_valid_key(key):
            return False
        x = self._index_of(delta.meta)
        keys = [self.layout.session(key)]
        if x and not self.layout.cluster:
            keys.append(x)
        header = self._header(now=now, member=key, meta=delta.meta, x=x, score=now)
        reply = yield from self.script(lua.APPLY, keys, header + _field_args(delta.delete, delta.set))
        if reply[0] != 1:
            return False
        old_x = reply[1]
        if self.layout.cluster and delta.meta is not None and old_x != x:
            if x:
                yield from self.soft(self._enlist(x, key, now, delta.meta))
            if old_x:
                yield from self.soft(self.command("ZREM", old_x, key))
        return True

    def rename(self, old: str, new: str, delta: Delta, now: float) -> Plan[bool]:
        if not (ids.is_valid_key(old) and ids.is_valid_key(new)) or old == new:
            return False
        if self.layout.cluster:
            return (yield from self._cluster_rename(old, new, delta, now))
        x = self._index_of(delta.meta)
        keys = [self.layout.session(old), self.layout.session(new)] + ([x] if x else [])
        header = self._header(now=now, member=new, meta=delta.meta, x=x, score=now, extra=old)
        reply = yield from self.script(lua.RENAME, keys, header + _field_args(delta.delete, delta.set))
        return bool(reply[0] == 1)

    def _cluster_rename(self, old: str, new: str, delta: Delta, now: float) -> Plan[bool]:
        ttl_ms = _ms(self.layout.rename_ttl)
        old_k = self.layout.session(old)
        got = yield from self.script(lua.DETACH, [old_k], [_num(now), new, ttl_ms])
        if got[0] != 1:
            return False
        data = _pairs(got[1])
        found = parse_hash(data, -math.inf)
        if found is None:
            raise StoreError("redis held a session it cannot read; it was not renamed")
        record, old_x = found
        deadline = int(got[2]) * 1000 + int(got[3]) // 1000 + ttl_ms
        fields = {k: v for k, v in record.fields.items() if k not in delta.delete}
        fields.update(delta.set)
        meta = delta.meta if delta.meta is not None else record.meta
        x = self._index_of(meta)
        undo = self.script(lua.RESTORE, [old_k], [new, _ms(record.meta.expires_at)])
        try:
            if x:
                yield from self._enlist(x, new, now, meta)
        except StoreError:
            yield from self.soft(undo)  # step 2 was never sent: undoing cannot make a twin
            raise
        header = self._header(now=None, member=new, meta=meta, x=x, score=now, extra=deadline)
        reply = yield from self.script(
            lua.CREATE, [self.layout.session(new)], header + _field_args(frozenset(), fields)
        )
        if reply[0] != 1:
            yield from self.soft(undo)
            return False
        if old_x:
            yield from self.soft(self.command("ZREM", old_x, old))
        return True

    def delete(self, key: str) -> Plan[bool]:
        if not ids.is_valid_key(key):
            return False
        k = self.layout.session(key)
        reply = yield from self.script(lua.DROP, [k], [self.local, key, b""])
        if reply[0] == 1:
            if reply[1]:
                yield from self.soft(self.command("ZREM", reply[1], key))
            return True
        if reply[0] != 2:
            return False
        # A rename of this session is in flight (Cluster): kill its target first, then the
        # tombstone (see the module docstring for why this order).
        target = _s(reply[1])
        if ids.is_valid_key(target):
            marker_ms = 2 * _ms(self.layout.rename_ttl)
            killed = yield from self.script(lua.KILL, [self.layout.session(target)], [marker_ms])
            if killed[1]:
                yield from self.soft(self.command("ZREM", killed[1], target))
        yield from self.command("DEL", k)
        return True

    def list_user(self, user_id: str, now: float) -> Plan[list[tuple[str, Meta]]]:
        x = self.layout.index(user_id)
        members: list[bytes] = yield from self.command("ZRANGE", x, 0, -1)
        if not members:
            return []
        replies = yield Send(tuple(("HMGET", self.layout.session(_s(m)), b"m", b"e") for m in members))
        live: list[tuple[str, Meta]] = []
        dead: list[bytes] = []  # expired: final, whatever is in flight
        gone: list[bytes] = []  # no session, or another user's: may be a write in flight
        for member, reply in zip(members, replies, strict=True):
            m, e = _check(reply)
            found = None if m is None or e is None else parse_hash({b"m": m, b"e": e}, -math.inf)
            if found is None or found[0].meta.user_id != user_id:
                gone.append(member)
            elif float(e) <= now:
                dead.append(member)
            else:
                live.append((_s(member), found[0].meta))
        if dead or gone:
            grace = self.layout.index_grace if self.layout.cluster else 0.0
            args: list[Arg] = [_num(now - grace), len(dead), *dead, *gone]
            yield from self.script(lua.HEAL, [x], args)
        return sorted(live, key=lambda item: item[0])

    def _batches(self, batch: int, visit: Callable[[list[bytes]], Plan[int]]) -> Plan[int]:
        """SCAN every primary for session keys; run ``visit`` on each page; sum its results."""
        total = 0
        nodes = yield Nodes()
        for node in nodes:
            cursor = 0
            while True:
                reply = (yield Send((("SCAN", cursor, b"MATCH", self.layout.pattern(), b"COUNT",
                                      max(1, batch)),), node))[0]
                cursor, keys = _scan_reply(_check(reply))
                if keys:
                    total += yield from visit(keys)
                if cursor == 0:
                    break
        return total

    def count(self, now: float) -> Plan[int]:
        def visit(keys: list[bytes]) -> Plan[int]:
            es = yield Send(tuple(("HGET", k, b"e") for k in keys))
            return sum(1 for e in es if _check(e) is not None and float(e) > now)

        return (yield from self._batches(500, visit))

    def purge(self, now: float, batch: int) -> Plan[int]:
        def visit(keys: list[bytes]) -> Plan[int]:
            prefix_len = len(self.layout.session("")) - 1
            members = [_s(k[prefix_len:-1]) for k in keys]
            replies = yield from self.scripts(
                [(lua.DROP, [k], [self.local, m, _num(now)]) for k, m in zip(keys, members, strict=True)]
            )
            cleanup: list[tuple[Arg, ...]] = [
                ("ZREM", r[1], m) for r, m in zip(replies, members, strict=True) if r[0] == 1 and r[1]
            ]
            if cleanup:
                yield from self.soft(self._all(cleanup))
            return sum(1 for r in replies if r[0] == 1)

        return (yield from self._batches(batch, visit))

    def _all(self, cmds: list[tuple[Arg, ...]]) -> Plan[None]:
        for reply in (yield Send(tuple(cmds))):
            _check(reply)
