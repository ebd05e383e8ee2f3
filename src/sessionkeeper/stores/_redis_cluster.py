"""redis-py's asyncio Cluster client, minus closing connections under running commands.

On a ``CLUSTERDOWN`` or ``SlotNotCovered`` reply (and on every ``reinitialize_steps``-th
``MOVED``), redis-py's ``redis.asyncio.cluster.RedisCluster`` (8.1) calls its own
``aclose()``: every connection to every node is closed at once, including the ones other
commands are using at that moment. A restarted master answers ``CLUSTERDOWN`` for about 2 s
while it rejoins (Redis waits before it takes writes again), and under concurrent load each of
those replies closed the connections of commands running on the *healthy* masters. Those
failed ("Connection closed by server", "Connection lost", or ``'NoneType' object has no
attribute ...`` inside redis-py), and their ``ConnectionError`` made redis-py close more free
connections, which other commands had just taken: a cascade that outlived the outage by up to
0.6 s. ``bench/cluster_restart.py --client stock`` (30 loops, 10 runs): 0-105 failed commands
per run that began after every node reported ``cluster_state:ok`` (8 runs of 10), and 203-321
per run on the masters that never went down; the soak's Cluster ASGI restart row: 8 answers
503 outside the fault window.

:class:`AsyncRedisCluster` keeps everything else of redis-py's client (routing, redirects,
connections, TLS, AUTH) and changes one thing: ``aclose()`` called by redis-py itself while it
runs a command is a *topology reset*, not a close. The next command first re-reads the slot
map (``CLUSTER SLOTS``), which marks every connection for reconnect; a connection in use is
reconnected after its command is done, and a free one by the command that takes it next. No
command loses its connection to another command's error, and nothing is retried: a command
that got ``CLUSTERDOWN`` still fails (the server refused it, so it never ran) and is a 503.
``aclose()`` called from outside a command (the store's ``aclose``) still closes everything.

The sync client (``redis.cluster.RedisCluster``) does not have the problem: on
``CLUSTERDOWN`` it re-reads the slot map without closing anything, and it disconnects free
connections under its pool's lock, so none is in use. It is used as it is.

Left as redis-py has it: a ``ConnectionError`` or ``TimeoutError`` from one node disconnects
that node's free connections without taking them out of the pool first, so a command that
takes one in the same instant fails too; that only happens while that node is failing (a
fault window), not to the other nodes. And a slot-map refresh that fails outright (no node
answers, or none covers every slot: the whole cluster is down) still closes everything.
"""

from __future__ import annotations

import contextvars
from typing import Any

import redis.asyncio.cluster

# True while this task (or a task it started) runs a command of an AsyncRedisCluster.
_IN_COMMAND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sessionkeeper_redis_cluster_in_command", default=False
)


class AsyncRedisCluster(redis.asyncio.cluster.RedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` whose error handling never closes connections
    that other commands are using (see the module docstring).

    Pipelines are not marked: redis-py's cluster pipeline calls ``aclose()`` only before a
    retry, and the store's clients never retry."""

    __slots__ = ()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's ``execute_command``, marked as running a command for :meth:`aclose`."""
        token = _IN_COMMAND.set(True)
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            _IN_COMMAND.reset(token)

    async def aclose(self) -> None:
        """Close every connection; inside a command (redis-py's own reset after CLUSTERDOWN,
        an uncovered slot or repeated MOVED), re-read the slot map before the next command
        instead, and leave connections to finish what they are doing."""
        if _IN_COMMAND.get():
            # What redis-py's aclose() does to re-read the topology, without disconnecting.
            # The refresh (NodesManager.set_nodes) marks every connection for reconnect.
            self._initialize = True
            return
        await super().aclose()
