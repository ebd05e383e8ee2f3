"""Connection checkout cost, before and after issue 16 (a busy pool waits instead of failing).

    .venv/bin/python bench/soak_checkout.py                 # Redis on 127.0.0.1:6379
    .venv/bin/python bench/soak_checkout.py --n 20000 --rounds 7 --redis redis://127.0.0.1:6379/0

Three ways to take a connection for one command, each measured with a connection free (the
fast path; the wait itself only happens when none is):

- ``nonblocking``: redis-py's ``ConnectionPool`` alone (the old default: fails when empty);
- ``blocking``: redis-py's ``BlockingConnectionPool`` (waits; the old ``pool_timeout > 0``);
- ``gate``: what the store does now: its own semaphore (taken without waiting when a slot is
  free, a bounded wait otherwise) in front of the non-blocking pool.

For each: µs per checkout+release pair (no I/O) and µs per PING round trip, asyncio and
threads (sync). The median of ``--rounds`` alternating rounds; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

import redis
import redis.asyncio


def _async_pools(url: str) -> dict[str, Any]:
    return {
        "nonblocking": redis.asyncio.ConnectionPool.from_url(url, max_connections=100, protocol=2),
        "blocking": redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=100, timeout=2,
                                                                  protocol=2),
        "gate": redis.asyncio.ConnectionPool.from_url(url, max_connections=100, protocol=2),
    }


def _sync_pools(url: str) -> dict[str, Any]:
    return {
        "nonblocking": redis.ConnectionPool.from_url(url, max_connections=100, protocol=2),
        "blocking": redis.BlockingConnectionPool.from_url(url, max_connections=100, timeout=2, protocol=2),
        "gate": redis.ConnectionPool.from_url(url, max_connections=100, protocol=2),
    }


async def _async_round(name: str, pool: Any, n: int, with_io: bool) -> float:
    gate = asyncio.Semaphore(100) if name == "gate" else None
    client = redis.asyncio.Redis.from_pool(pool) if with_io else None
    timeout = 2.0

    async def once() -> None:
        if gate is not None:  # the store's _aio, minus the request itself
            if gate.locked():
                async with asyncio.timeout(timeout):
                    await gate.acquire()
            else:
                await gate.acquire()
        try:
            if client is not None:
                await client.execute_command("PING")
            else:
                conn = await pool.get_connection()
                await pool.release(conn)
        finally:
            if gate is not None:
                gate.release()

    await once()  # connect outside the timing
    start = time.perf_counter()
    for _ in range(n):
        await once()
    return (time.perf_counter() - start) / n * 1e6


def _sync_round(name: str, pool: Any, n: int, with_io: bool) -> float:
    gate = threading.BoundedSemaphore(100) if name == "gate" else None
    client = redis.Redis(connection_pool=pool) if with_io else None

    def once() -> None:
        if gate is not None and not gate.acquire(blocking=False) and not gate.acquire(timeout=2.0):
            raise RuntimeError("busy")
        try:
            if client is not None:
                client.execute_command("PING")
            else:
                conn = pool.get_connection()
                pool.release(conn)
        finally:
            if gate is not None:
                gate.release()

    once()
    start = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=20000, help="operations per round (bounded)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = min(args.n, 200_000), min(args.rounds, 50)

    results: dict[tuple[str, str, str], list[float]] = {}
    loop = asyncio.new_event_loop()
    apools, spools = loop.run_until_complete(_make(args.redis)), _sync_pools(args.redis)
    for _ in range(rounds):
        for with_io, what in ((False, "checkout+release"), (True, "PING round trip")):
            for name in ("nonblocking", "blocking", "gate"):
                took = loop.run_until_complete(_async_round(name, apools[name], n, with_io))
                results.setdefault(("asyncio", what, name), []).append(took)
                took = _sync_round(name, spools[name], n, with_io)
                results.setdefault(("threads", what, name), []).append(took)
    for pool in apools.values():
        loop.run_until_complete(pool.aclose())
    loop.close()
    for pool in spools.values():
        pool.close()

    print(f"median µs per operation, {rounds} rounds x {n} operations, one connection free\n")
    names = ("nonblocking (old default)", "blocking (old pool_timeout>0)", "gate (new default)")
    print(f"| face | measure | {' | '.join(names)} |")
    print("|---|---|---:|---:|---:|")
    for face in ("asyncio", "threads"):
        for what in ("checkout+release", "PING round trip"):
            cells = [f"{statistics.median(results[(face, what, name)]):.2f}"
                     for name in ("nonblocking", "blocking", "gate")]
            print(f"| {face} | {what} | {' | '.join(cells)} |")


async def _make(url: str) -> dict[str, Any]:
    return _async_pools(url)


if __name__ == "__main__":
    main()
