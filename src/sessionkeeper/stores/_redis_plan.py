"""The Redis store's logic, free of I/O: every operation is a generator ("plan") that yields
:class:`Send` requests (one round trip each: a command, or a pipeline of commands) and gets
the replies back. :func:`drive_sync` and :func:`drive_async` run a plan against a redis-py
client; they are the only code that differs between the sync and async faces.

Round trips per operation (single server): Load 1, Create 1, Apply 1, Rename 1, Delete 1,
ListUser 2-3 (index, the sessions' metas as one pipeline, and a heal if members were stale).
A script whose SHA the server has not cached (restart, SCRIPT FLUSH) costs one more, once.
A plan may also yield :class:`Pause` (Cluster only: an Apply waiting for a rename to land).

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
- A second Rename of the same old key after step 1 fails: it needs ``e``, so two regenerates
  cannot fork a session.
- Apply and Load meeting a tombstone (see "Racing a rename" below) never write anything but
  a live session that carries ``o`` = the tombstone's key: they cannot resurrect or fork.
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

Racing a rename
---------------
A single server renames atomically: a concurrent Apply or Load of the old key lands wholly
before the move (and the move carries it) or wholly after (it fails; the request flow then
follows its renewal alias to the new key). The Cluster keeps that promise around the gap
between the steps, taking step 2 as the moment of the move. Step 2 writes ``o`` (the old
key) and ``od`` (the deadline) into the new session, so whoever meets a tombstone can tell
"moved" (the target carries ``o`` = this key, or is a marker) from "moving" (it does not):

- Load: moved -> ``None``, as after an atomic rename. Moving -> the session as it was when
  the move began (the tombstone keeps it): the Load lands before the move. One more round
  trip (HMGET of the target), only when there is a tombstone.
- Apply: moved -> False. Moving -> the Apply lands before the move: once step 2 is there,
  it applies its delta to the new session (the fields only if the rename brought its own
  meta, which would have overwritten this one), retrying with short pauses, at most
  ``Layout.move_wait`` seconds in all. Each retry also looks at the old key: a refused step 2
  restores it, and the delta then lands there. A marker means a Delete won: False. Still no
  step 2 after the wait (a stalled or dead renamer): :class:`StoreUnavailable`, nothing written.
- A Delete of a session that moved here before ``od`` leaves a marker until the old tombstone
  is surely gone, so a late follower learns "deleted" instead of waiting for a step 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    MaxConnectionsError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core import ids
from ..core.patch import apply_patch_text
from ..core.records import (
    Apply,
    Delta,
    Load,
    Meta,
    PatchAppend,
    PatchDelete,
    PatchOp,
    PatchSet,
    Purge,
    PurgeReport,
    Record,
    Scan,
    ScanPage,
    alias_shaped,
    bad_cursor,
    check_limit,
    is_renewal_alias,
)
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


@dataclass(frozen=True, slots=True)
class Pause:
    """-> ``None`` after ``seconds``: the drivers sleep (sync) or ``asyncio.sleep`` (async)."""

    seconds: float


Request: TypeAlias = Send | Nodes  # what the client I/O performs
Step: TypeAlias = Send | Nodes | Pause  # what a plan yields
Plan: TypeAlias = Generator[Step, Any, T]
REDIS_ERRORS = (RedisError, RedisClusterException)
MAX_HOPS = 4  # renames of one session an Apply follows while it waits (a chain of moves)


NOT_DIRECT = object()  # RedisPlans.direct_result: "the server lost the script: send EVAL"


class PoolBusy(MaxConnectionsError):
    """Every connection stayed in use for the whole ``pool_timeout``: the store is busy, not
    down. Raised by the store's gate (a redis error, so a plan sees it like any other)."""

    def __init__(self, connections: int, waited: float) -> None:
        self.connections = connections
        self.waited = waited
        super().__init__(f"all {connections} connections stayed in use for {waited:g}s")


def translate(exc: BaseException, where: str = "redis") -> StoreError:
    """The sessionkeeper error for a redis-py error: unreachable or failing over -> 503.

    ``where`` names the store (its URL without password) in the message.
    """
    if isinstance(exc, AuthenticationError | AuthorizationError):
        err: StoreError = StoreError(f"{where} refused the credentials: {exc}")
    elif isinstance(exc, PoolBusy):
        err = StoreUnavailable(
            f"{where} busy (reachable, but {exc}): raise max_connections or pool_timeout, "
            "or look for what holds connections so long (slow commands, a hung server)"
        )
    elif isinstance(exc, MaxConnectionsError):  # a pool found empty all the same
        err = StoreUnavailable(f"{where} busy (reachable, but every connection is in use): {exc}")
    elif isinstance(
        exc,
        RedisConnectionError | RedisTimeoutError | ClusterDownError | ClusterError | TryAgainError
        | ReadOnlyError | RedisClusterException,
    ):
        err = StoreUnavailable(f"{where} unavailable: {type(exc).__name__}: {exc}")
    else:
        err = StoreError(f"{where} error: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def drive_sync(plan: Plan[T], io: Callable[[Request], Any], where: str = "redis") -> T:
    """Run ``plan``, doing each request with ``io``; redis errors go back in translated."""
    try:
        request = next(plan)
        while True:
            if isinstance(request, Pause):
                time.sleep(request.seconds)
                request = plan.send(None)
                continue
            try:
                reply = io(request)
            except REDIS_ERRORS as exc:
                request = plan.throw(translate(exc, where))
            else:
                request = plan.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


async def drive_async(plan: Plan[T], io: Callable[[Request], Awaitable[Any]], where: str = "redis") -> T:
    """:func:`drive_sync` for an async ``io``."""
    try:
        request = next(plan)
        while True:
            if isinstance(request, Pause):
                await asyncio.sleep(request.seconds)
                request = plan.send(None)
                continue
            try:
                reply = await io(request)
            except REDIS_ERRORS as exc:
                request = plan.throw(translate(exc, where))
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
    return _META_ENCODER.encode(meta.to_dict()).encode()


# made once: json.dumps with separators builds a new encoder on every call (about 1 µs of
# the write path)
_META_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _key_text(step: str) -> bytes:
    """A path key as the codec spells it inside JSON text (the script compares raw text)."""
    return _b(_KEY_ENCODER.encode(step))


_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False)  # core/codec.py's spelling of a string


def _nested_args(patch: Mapping[str, tuple[PatchOp, ...]]) -> list[Arg]:
    """The nested patches in the scripts' layout (see _redis_lua), led by their length."""
    out: list[Arg] = []
    for name, ops in patch.items():
        out += (b"f:" + _b(name), len(ops))
        for op in ops:
            kind = b"s" if isinstance(op, PatchSet) else b"d" if isinstance(op, PatchDelete) else b"a"
            out += (kind, len(op.path), *(_key_text(step) for step in op.path))
            if isinstance(op, PatchSet):
                out.append(_b(op.value))
            elif isinstance(op, PatchAppend):
                out.append(_b(op.items))
    return [len(out), *out]


def _field_args(
    delete: Collection[str], set_: Mapping[str, str], patch: Mapping[str, tuple[PatchOp, ...]] | None = None
) -> list[Arg]:
    out: list[Arg] = [len(delete)]
    out += [b"f:" + _b(name) for name in delete]
    out += _nested_args(patch or {})
    for name, value in set_.items():
        out += (b"f:" + _b(name), _b(value))
    return out


def hash_from_json(raw: Any) -> dict[bytes, bytes]:
    """The LOAD script's reply for anything but a session (a JSON array of names and values:
    a tombstone, a marker; see ``lua.LOAD``) as HGETALL's dict; ``{}`` for its session form."""
    try:
        items = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    if not isinstance(items, list) or len(items) % 2:
        return {}  # "{}": cjson's spelling of an empty hash
    it = iter(items)
    return {_b(str(k)): _b(str(v)) for k, v in zip(it, it, strict=True)}


def record_from_json(raw: Any, now: float) -> Record | None:
    """The live record in the LOAD script's reply (its session form, see ``lua.LOAD``), else
    ``None``; the request path's one parse of a session. Anything unreadable is no session:
    a value the store cannot vouch for is never adopted."""
    try:
        data = json.loads(raw)  # bytes: decoded with surrogatepass, as _s does
        if type(data) is not dict or float(data["e"]) <= now:
            return None
        fields = data["f"]
        if type(fields) is not dict or not all(type(v) is str for v in fields.values()):
            return None
        return Record(fields, Meta.from_dict(data["m"]))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


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


def _carried(delta: Delta, own_meta: bytes) -> Delta:
    """What of an Apply a rename carries to its new key: all of it, or, if the rename brought
    its own meta (which would overwrite this one), the fields only."""
    return replace(delta, meta=None) if own_meta == b"1" else delta


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
    move_wait: float = 0.25  # Cluster: seconds an Apply waits for a rename's step 2 at most

    def pauses(self) -> list[float]:
        """The waits of an Apply following a rename: 1 ms, doubling, capped at 50 ms, in all
        ``move_wait`` seconds (no longer than a step 2 may still come: ``rename_ttl``)."""
        out: list[float] = []
        left, step = min(self.move_wait, self.rename_ttl), 0.001
        while left > 1e-6:
            out.append(min(step, left))
            left -= out[-1]
            step = min(2 * step, 0.05)
        return out

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
        self._slack = _ms(layout.rename_ttl)  # how long a Delete's marker outlives ``od``

    # -- helpers --

    def script(self, script: lua.Script, keys: list[bytes], args: list[Arg]) -> Plan[Any]:
        """EVALSHA, and EVAL if the server lost the script: one round trip, rarely two."""
        return (yield from self._run(("EVALSHA", script.sha, len(keys), *keys, *args), script))

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

    # -- the request path: Load and Apply on one server, sent by the caller -------------
    # The store sends these itself (RedisStore.execute/aexecute), skipping the plan machinery
    # (generators, the driver loop): about a sixth of a Load's CPU. The plans below build the
    # same commands; a Cluster, with its renames in two steps, always runs the plans.

    def direct(self, op: Load | Apply) -> tuple[Arg, ...] | None:
        """The one command that performs ``op`` on a single server, or ``None`` when the plan
        must run (a Cluster, or a key that is not a storage key)."""
        if self.layout.cluster or not ids.is_valid_key(op.key):
            return None
        if type(op) is Load:
            return self._load_cmd(op.key)
        assert isinstance(op, Apply)
        return self._apply_cmd(op.key, op.delta, op.now)

    def direct_result(self, op: Load | Apply, reply: Any) -> Any:
        """``op``'s result from the reply to :meth:`direct`'s command; ``NOT_DIRECT`` when the
        server refused it unrun, having lost its script cache (a restart): then send
        :meth:`direct_eval`'s command, once, and read its reply here."""
        if isinstance(reply, NoScriptError):
            return NOT_DIRECT
        _check(reply)
        if type(op) is Load:
            return record_from_json(reply, op.now)
        return reply == 1  # else {0} dead or {3} missing (tombstones exist only in a Cluster)

    @staticmethod
    def direct_eval(op: Load | Apply, cmd: tuple[Arg, ...]) -> tuple[Arg, ...]:
        """:meth:`direct`'s command as EVAL (the script's source instead of its SHA)."""
        return ("EVAL", (lua.LOAD if type(op) is Load else lua.APPLY).source, *cmd[2:])

    def _load_cmd(self, key: str) -> tuple[Arg, ...]:
        return ("EVALSHA", lua.LOAD.sha, 1, self.layout.session(key))

    def _apply_cmd(self, key: str, delta: Delta, now: float, origin: str = "") -> tuple[Arg, ...]:
        x = self._index_of(delta.meta)
        header = self._header(now=now, member=key, meta=delta.meta, x=x, score=now, extra=origin)
        fields = _field_args(delta.delete, delta.set, delta.patch)
        if x and not self.layout.cluster:
            return ("EVALSHA", lua.APPLY.sha, 2, self.layout.session(key), x, *header, *fields)
        return ("EVALSHA", lua.APPLY.sha, 1, self.layout.session(key), *header, *fields)

    def _run(self, cmd: tuple[Arg, ...], script: lua.Script) -> Plan[Any]:
        """Send a ready EVALSHA command of ``script``; EVAL it if the server lost the script."""
        reply = (yield Send((cmd,)))[0]
        if isinstance(reply, NoScriptError):
            reply = (yield Send((("EVAL", script.source, *cmd[2:]),)))[0]
        return _check(reply)

    # -- operations --

    def load(self, key: str, now: float) -> Plan[Record | None]:
        if not ids.is_valid_key(key):
            return None
        raw = yield from self._run(self._load_cmd(key), lua.LOAD)
        record = record_from_json(raw, now)
        if record is not None or not self.layout.cluster:
            return record
        data = hash_from_json(raw)
        found = parse_hash(data, now)
        if found is None and b"t" in data and b"e" not in data:
            # A tombstone: a rename is moving this session (Load lands before the move: the
            # session as it was), or has moved it (the old key is dead). See "Racing a rename".
            te = data.get(b"te")
            if te is not None and not (yield from self._moved(key, _s(data[b"t"]))):
                found = parse_hash({**data, b"e": te}, now)
        return None if found is None else found[0]

    def _moved(self, key: str, target: str) -> Plan[bool]:
        """Whether the rename of ``key`` to ``target`` has made step 2 (or a Delete killed it):
        the target holds the session that came from ``key``, or a marker."""
        if not ids.is_valid_key(target):
            return True  # not a tombstone this store wrote: nothing to wait for
        d, o = yield from self.command("HMGET", self.layout.session(target), b"d", b"o")
        return d is not None or o == _b(key)

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
        reply = yield from self._apply_at(key, delta, now)
        if reply[0] == 1:
            return True
        if reply[0] == 2 and self.layout.cluster:
            return (yield from self._follow(key, delta, now, reply))
        return False

    def _apply_at(self, key: str, delta: Delta, now: float, origin: str = "") -> Plan[list[Any]]:
        """One APPLY (and the index upkeep after a write): the script's reply."""
        reply = yield from self._run(self._apply_cmd(key, delta, now, origin), lua.APPLY)
        if reply == 1:  # written; a single server kept the index itself
            return [1]
        if reply[0] == 1 and self.layout.cluster and delta.meta is not None:
            x = self._index_of(delta.meta)
            old_x, join = reply[1], reply[2]
            if x and join:
                yield from self.soft(self._enlist(x, key, now, delta.meta))
            if old_x and old_x != x:
                yield from self.soft(self.command("ZREM", old_x, key))
        return list(reply)

    def _follow(self, key: str, delta: Delta, now: float, tomb: list[Any]) -> Plan[bool]:
        """Apply met a rename's tombstone at ``key`` (Cluster): see "Racing a rename"."""
        target = _s(tomb[1])
        if (yield from self._moved(key, target)):
            return False  # moved before this Apply came: the old key is dead
        # Moving: this Apply lands before the move, i.e. in the session step 2 creates.
        src, src_delta, src_origin = key, delta, ""
        dst_delta = _carried(delta, tomb[2])
        hops = 0
        for pause in self.layout.pauses():
            yield Pause(pause)
            while True:
                reply = yield from self._apply_at(target, dst_delta, now, src)
                if reply[0] != 2:
                    break
                hops += 1  # it moved on again meanwhile: follow the chain
                if hops > MAX_HOPS or not ids.is_valid_key(_s(reply[1])):
                    return False
                src, src_delta, src_origin = target, dst_delta, src
                target, dst_delta = _s(reply[1]), _carried(dst_delta, reply[2])
            if reply[0] != 3:
                return bool(reply[0] == 1)  # written, or dead (expired, deleted)
            # Not there yet. Step 2 refused and the old key turned back? Then it lands there.
            reply = yield from self._apply_at(src, src_delta, now, src_origin)
            if reply[0] != 2:
                return bool(reply[0] == 1)
            if _s(reply[1]) != target:  # turned back, then moving elsewhere
                target, dst_delta = _s(reply[1]), _carried(src_delta, reply[2])
                if not ids.is_valid_key(target):
                    return False
        raise StoreUnavailable(
            f"a rename of this session did not finish within {self.layout.move_wait:g}s; "
            "the change was not written"
        )

    def rename(self, old: str, new: str, delta: Delta, now: float) -> Plan[bool]:
        if not (ids.is_valid_key(old) and ids.is_valid_key(new)) or old == new:
            return False
        if self.layout.cluster:
            return (yield from self._cluster_rename(old, new, delta, now))
        x = self._index_of(delta.meta)
        keys = [self.layout.session(old), self.layout.session(new)] + ([x] if x else [])
        header = self._header(now=now, member=new, meta=delta.meta, x=x, score=now, extra=old)
        args = header + _field_args(delta.delete, delta.set, delta.patch)
        reply = yield from self.script(lua.RENAME, keys, args)
        return bool(reply[0] == 1)

    def _cluster_rename(self, old: str, new: str, delta: Delta, now: float) -> Plan[bool]:
        ttl_ms = _ms(self.layout.rename_ttl)
        old_k = self.layout.session(old)
        own_meta = b"1" if delta.meta is not None else b""
        got = yield from self.script(lua.DETACH, [old_k], [_num(now), new, ttl_ms, own_meta])
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
        for name, ops in delta.patch.items():  # step 2 writes the fields whole: patch them here
            text = apply_patch_text(fields.get(name), ops)
            if text is not None:
                fields[name] = text
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
        # Besides the fields: where it came from, and until when a tombstone may lead here.
        origin: list[Arg] = [b"o", old, b"od", deadline]
        reply = yield from self.script(
            lua.CREATE, [self.layout.session(new)], header + _field_args(frozenset(), fields) + origin
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
        reply = yield from self.script(lua.DROP, [k], [self.local, key, b"", self._slack])
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

    def purge(self, now: float, batch: int, report: bool = False) -> Plan[Any]:
        """Remove the sessions expired at ``now`` by the caller's clock that Redis has not
        expired yet; their count, or with ``report`` a :class:`PurgeReport` naming them (with
        their metadata as read just before the removal; aliases counted, not named).

        Per SCAN page: one pipeline reads each key's expiry (and metadata, to report), then
        only the expired keys go to DROP, which checks the expiry again, atomically."""
        named: list[tuple[str, Meta]] = []
        wanted = (b"e", b"m") if report else (b"e",)

        def visit(keys: list[bytes]) -> Plan[int]:
            reads = yield Send(tuple(("HMGET", k, *wanted) for k in keys))
            due: list[tuple[bytes, str, Meta | None]] = []
            for k, reply in zip(keys, reads, strict=True):
                e, *m = _check(reply)
                if e is not None and _expired(e, now):  # no e: a tombstone or a marker
                    due.append((k, self._member(k), _meta(m[0]) if m else None))
            if not due:
                return 0
            aliases = (yield from self._aliases([(k, meta) for k, _, meta in due])) if report else set()
            replies = yield from self.scripts(
                [(lua.DROP, [k], [self.local, member, _num(now), self._slack]) for k, member, _ in due]
            )
            cleanup: list[tuple[Arg, ...]] = []
            for (k, member, meta), r in zip(due, replies, strict=True):
                if r[0] != 1:
                    continue
                if r[1]:
                    cleanup.append(("ZREM", r[1], member))
                if meta is not None and k not in aliases and ids.is_valid_key(member):
                    named.append((member, meta))
            if cleanup:
                yield from self.soft(self._all(cleanup))
            return sum(1 for r in replies if r[0] == 1)

        removed = yield from self._batches(batch, visit)
        return PurgeReport(removed, tuple(named)) if report else removed

    def _all(self, cmds: list[tuple[Arg, ...]]) -> Plan[None]:
        for reply in (yield Send(tuple(cmds))):
            _check(reply)

    # -- Scan, and the dispatch of the whole-store operations --

    def maintenance(self, op: Scan | Purge) -> Plan[Any]:
        """The plan of a :class:`Scan`, or of a ``Purge(report=True)``."""
        if isinstance(op, Scan):
            return self.scan(op.now, op.cursor, op.limit)
        return self.purge(op.now, op.batch, report=op.report)

    def scan(self, now: float, cursor: str, limit: int) -> Plan[ScanPage]:
        """One page of the live sessions: one ``SCAN`` call (``COUNT limit``) on one primary,
        then one pipeline of their metadata (and, rarely, one of the field names of those that
        may be renewal aliases). The cursor is ``"<primary>:<SCAN cursor>"``, the primaries
        taken in the order of their names; ``""`` when the last primary is done."""
        check_limit(limit, "scan limit")
        node_at, at = _scan_cursor(cursor)
        nodes = sorted((yield Nodes()), key=_node_name)
        if node_at >= len(nodes):
            raise bad_cursor(cursor)
        reply = (yield Send((("SCAN", at, b"MATCH", self.layout.pattern(), b"COUNT", limit),),
                            nodes[node_at]))[0]
        at, keys = _scan_reply(_check(reply))
        found = yield from self._live(keys, now)
        if not at:  # this primary is done: the next one, or the end
            node_at += 1
        return ScanPage(tuple(found), f"{node_at}:{at}" if node_at < len(nodes) else "")

    def _member(self, k: bytes) -> str:
        """The storage key inside a session hash's key name (``<prefix>{<key>}``)."""
        return _s(k[len(self.layout.session("")) - 1 : -1])

    def _live(self, keys: list[bytes], now: float) -> Plan[list[tuple[str, Meta]]]:
        """The live sessions among session hash keys, renewal aliases left out."""
        if not keys:
            return []
        replies = yield Send(tuple(("HMGET", k, b"m", b"e") for k in keys))
        live: list[tuple[bytes, Meta]] = []
        for k, reply in zip(keys, replies, strict=True):
            m, e = _check(reply)
            found = None if m is None or e is None else parse_hash({b"m": m, b"e": e}, now)
            if found is not None and ids.is_valid_key(self._member(k)):
                live.append((k, found[0].meta))
        aliases = yield from self._aliases(live)
        return sorted(((self._member(k), meta) for k, meta in live if k not in aliases),
                      key=lambda pair: pair[0])

    def _aliases(self, records: Collection[tuple[bytes, Meta | None]]) -> Plan[set[bytes]]:
        """Which of these session hashes are renewal aliases: the field names are read (one
        pipeline) only for those whose metadata has an alias's shape."""
        maybe = [(k, meta) for k, meta in records if meta is not None and alias_shaped(meta)]
        if not maybe:
            return set()
        names = yield Send(tuple(("HKEYS", k) for k, _ in maybe))
        return {k for (k, meta), got in zip(maybe, names, strict=True)
                if is_renewal_alias([_s(n[2:]) for n in _check(got) if n.startswith(b"f:")], meta)}


def _expired(e: bytes, now: float) -> bool:
    try:
        return float(e) <= now
    except ValueError:  # not a number this store wrote: left alone
        return False


def _meta(raw: bytes | None) -> Meta | None:
    try:
        return None if raw is None else Meta.from_dict(json.loads(raw))
    except (KeyError, TypeError, ValueError):
        return None


def _node_name(node: Any) -> str:
    return "" if node is None else str(getattr(node, "name", node))


def _scan_cursor(cursor: str) -> tuple[int, int]:
    """``"<primary index>:<SCAN cursor>"`` (``""``: the start) as numbers; ConfigError if it is
    not a cursor :meth:`RedisPlans.scan` returns."""
    if cursor == "":
        return 0, 0
    node, sep, at = cursor.partition(":") if isinstance(cursor, str) else ("", "", "")
    if not (sep and node.isascii() and at.isascii() and node.isdigit() and at.isdigit()
            and len(node) <= 6 and len(at) <= 20 and int(at) < 2**64):
        raise bad_cursor(cursor)
    return int(node), int(at)
