"""The Redis store's path to one server (a standalone Redis or Valkey, or the master a
Sentinel names): ready-made command bytes over redis-py connections, one deadline per round
trip.

Why not ``client.execute_command``: per command, redis-py's client runs its retry wrapper,
takes a connection from its pool under an ``asyncio.Lock`` (recording observability counters
and checking the connection), encodes every argument through its ``Encoder``, and, with a
``socket_timeout`` (its default: 5 s here), wraps the send in ``asyncio.wait_for`` (a new
Task per command on Python 3.11) and the read in a timeout of its own. For the store's one
or two round trips per request that was most of the session layer's CPU. Measured with
``bench/micro.py --wire`` (CPU µs per EVALSHA with 22 arguments, one core): this path takes
30-45 % less CPU per command than ``execute_command``, async and sync.

What stays in redis-py, unchanged: the connection objects (connecting, TLS, AUTH/HELLO,
SELECT, client name, Sentinel's master discovery and its read-only check), reading and
parsing replies (hiredis when installed), and the error classes. What is here:

- the request bytes: RESP arrays of bulk strings, built in one ``bytes.join``;
- a stack of idle connections. The store's gate (``max_connections``, ``pool_timeout``)
  already bounds how many are in use, so this needs no lock and no counters; a connection
  that an error or a deadline interrupted is disconnected before it goes back (the next
  user reconnects), and an idle one that has data or EOF waiting (the server restarted or
  closed it) is reconnected before use, as redis-py's pool does; after a fork (gunicorn
  ``--preload``, multiprocessing) the child drops the parent's connections unused, as
  redis-py's pool does, so two processes never share a socket;
- one deadline per round trip (``asyncio.timeout``, a timer handle, no Task), instead of
  one per send and one per read.

Commands are never retried: a write whose reply was lost may have happened.
"""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import Sequence
from typing import Any, TypeAlias

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg: TypeAlias = bytes | str | int
Cmds: TypeAlias = Sequence[Sequence[Arg]]


def pack(cmds: Cmds) -> bytes:
    """``cmds`` as one buffer of RESP arrays (what redis-py's ``pack_commands`` sends).

    ``str`` arguments are UTF-8 (the store passes names and hex keys as ``str``, user data
    already encoded as ``bytes``); ``int`` arguments are their decimal text.
    """
    out: list[bytes] = []
    add = out.append
    for cmd in cmds:
        add(b"*%d\r\n" % len(cmd))
        for arg in cmd:
            # exact types (a bool is not sent as a number), checked in the likely order
            if type(arg) is bytes:
                data = arg
            elif type(arg) is str:
                data = arg.encode()
            elif type(arg) is int:
                data = b"%d" % arg
            else:
                raise TypeError(f"cannot send {type(arg).__name__} to redis: {arg!r}")
            add(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class Slots:
    """A counting semaphore for threads (the sync face's gate), at C speed: a
    ``queue.SimpleQueue`` of tokens. ``threading.BoundedSemaphore`` is Python code around a
    ``Condition``: 1.9 µs per uncontended acquire and release, against 0.1 here (measured)."""

    def __init__(self, n: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(n):
            self._tokens.put(None)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot: at once, or (``blocking``) waiting up to ``timeout`` seconds."""
        try:
            self._tokens.get(blocking, timeout)
        except queue.Empty:
            return False
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._tokens.put(None)


class SyncWire:
    """The sync face: redis-py ``Connection`` objects from ``pool.make_connection()``.

    The blocking socket's own timeout (``socket_timeout``) is the deadline of each read.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool  # redis-py ConnectionPool (or SentinelConnectionPool): a factory
        self._idle: list[Any] = []  # list.pop/append are atomic under the GIL
        self._pid = os.getpid()

    @property
    def connection_pool(self) -> Any:
        """The redis-py pool the connections come from (its settings are theirs)."""
        return self._pool

    def call(self, cmds: Cmds) -> list[Any]:
        """Send ``cmds`` in one write, read one reply each; a refused command's reply is its
        ``ResponseError`` (so a pipeline's other replies are not lost)."""
        data = pack(cmds)
        conn = _take(self)
        try:
            conn.connect()  # no-op when connected
            if _stale(conn):
                conn.disconnect()
                conn.connect()
            conn.send_packed_command([data], check_health=False)  # a list: bytes alone is not
            return [_reply(conn) for _ in cmds]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._idle.append(conn)

    def close(self) -> None:
        """Disconnect the idle connections (one in use is disconnected by the next close)."""
        while self._idle:
            self._idle.pop().disconnect()


class AsyncWire:
    """The async face; its connections have no ``socket_timeout`` of their own: ``deadline``
    bounds each whole round trip (connect, send and every reply)."""

    def __init__(self, pool: Any, deadline: float) -> None:
        self._pool = pool
        self._deadline = deadline
        self._idle: list[Any] = []
        self._pid = os.getpid()

    @property
    def connection_pool(self) -> Any:
        """The redis-py pool the connections come from (its settings are theirs)."""
        return self._pool

    async def call(self, cmds: Cmds) -> list[Any]:
        """:meth:`SyncWire.call` for asyncio."""
        data = pack(cmds)
        conn = _take(self)
        try:
            async with asyncio.timeout(self._deadline):
                if not conn.is_connected:
                    await conn.connect()
                elif await _astale(conn):
                    await conn.disconnect()
                    await conn.connect()
                await conn.send_packed_command([data], check_health=False)
                replies = []
                for _ in cmds:  # a loop, not a comprehension: that would be one more coroutine
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # read whole: the connection is in step
                        replies.append(exc)
                return replies
        except TimeoutError:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"no reply within {self._deadline:g}s") from None
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            self._idle.append(conn)

    async def aclose(self) -> None:
        """Disconnect the idle connections."""
        while self._idle:
            await self._idle.pop().disconnect()


def _take(wire: SyncWire | AsyncWire) -> Any:
    """An idle connection of ``wire``, or a new (not yet connected) one."""
    if wire._pid != os.getpid():  # forked: the idle sockets are the parent's; leave them be
        wire._idle, wire._pid = [], os.getpid()
    try:
        return wire._idle.pop()
    except IndexError:
        return wire._pool.make_connection()


def _stale(conn: Any) -> bool:
    """Whether an idle connection has data or EOF waiting (the server restarted or closed it):
    not in step any more, so it is reconnected before use."""
    try:
        return bool(conn.can_read())
    except (RedisConnectionError, RedisTimeoutError, OSError):  # EOF read as an error
        return True


async def _astale(conn: Any) -> bool:
    try:
        return bool(await conn.can_read())
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return True


def _reply(conn: Any) -> Any:
    try:
        return conn.read_response()
    except ResponseError as exc:  # read whole: the connection is still in step
        return exc

