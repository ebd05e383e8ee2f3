"""A Redis Cluster master killed and restarted under load: errors after recovery (issue 16).

    .venv/bin/python bench/cluster_restart.py                      # async face, 5 runs
    .venv/bin/python bench/cluster_restart.py --face sync --runs 10
    .venv/bin/python bench/cluster_restart.py --client stock       # redis-py's own Cluster clients

Starts its own 3-master Cluster (append-only files, fsync always) on free loopback ports, as
the tests do (``tests.redis_servers``), and per run:

1. opens a fresh ``RedisStore`` on it (``redis+cluster://``, default options) and creates
   ``--sessions`` sessions;
2. runs ``--workers`` concurrent loops (asyncio tasks for ``--face async``, threads for
   ``sync``) of Load (half) and Apply adding a new field (half) on random sessions;
3. after ``--warmup`` seconds, ``kill -9``s one master (a different one each run), keeps it
   down ``--outage`` seconds, starts it again (same port, same nodes.conf and append-only
   file) and waits until every node reports ``cluster_state:ok``: that moment is "ok";
4. keeps the load on for ``--after`` seconds more, then loads every session and checks that
   every acknowledged write (an Apply that returned True) is there.

Per run it prints the errors of operations that *started* once the cluster was ok again
(must be 0: the outage is over), the errors during the outage (operations that started
before ok: expected, a 503 is the right answer then), the errors at any time on sessions
of the two masters that stayed up, the last error's time after ok, acknowledged writes lost
(must be 0), and the error kinds. ``--client stock`` runs the same
against redis-py's plain ``RedisCluster`` clients (how the store used them before
``sessionkeeper.stores._redis_cluster``), to show the difference. Everything is bounded in
time; the shared Redis on 6379 is never used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import redis  # noqa: E402
import redis.asyncio.cluster  # noqa: E402
import redis.asyncio.retry  # noqa: E402
import redis.cluster  # noqa: E402
import redis.retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from tests import redis_servers  # noqa: E402

from sessionkeeper import StoreError, open_store  # noqa: E402
from sessionkeeper.core.records import Apply, Create, Delta, Load, Meta, Record  # noqa: E402
from sessionkeeper.stores.redis import RedisStore  # noqa: E402

# Faults run in this one long-lived thread: a redis-server started from a thread dies when that
# thread ends (tests.redis_servers sets PR_SET_PDEATHSIG, which follows the parent *thread*).
FAULTS = ThreadPoolExecutor(1, thread_name_prefix="fault")


class StockClusterStore(RedisStore):
    """The store with redis-py's own Cluster clients, built as ``_make_client`` did before."""

    def _make_client(self, asynchronous: bool) -> Any:
        cluster: Any = redis.asyncio.cluster if asynchronous else redis.cluster
        retry: Any = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
        return cluster.RedisCluster(
            startup_nodes=[cluster.ClusterNode(h, p) for h, p in self.hosts],
            ssl=self.ssl, max_connections=self.max_connections,
            **{**self.connection_kwargs, "retry": retry(NoBackoff(), 0)},
        )


@dataclass
class Outcome:
    """What the workers saw in one run."""

    ops: int = 0
    errors: list[tuple[float, float, str, str]] = field(default_factory=list)  # (start, end, kind, key)
    acked: dict[str, set[str]] = field(default_factory=dict)  # session key -> fields written
    seq: int = 0

    def record_error(self, start: float, exc: BaseException, key: str) -> None:
        cause = exc.__cause__ or exc
        text = str(cause).split("\n")[0]
        self.errors.append((start, time.monotonic(), f"{type(cause).__name__}: {text[:70]}", key))


def _now() -> float:
    return time.time()


def _record(now: float) -> Record:
    return Record({"init": '"1"'}, Meta(created_at=now, last_seen=now, expires_at=now + 3600,
                                        absolute_at=now + 7200))


def _one_op(out: Outcome, keys: list[str], rnd: random.Random) -> tuple[Any, str | None, str]:
    key = rnd.choice(keys)
    if rnd.random() < 0.5:
        return Load(key, _now()), None, key
    out.seq += 1
    name = f"w{out.seq}"
    return Apply(key, Delta(set={name: "1"}), _now()), name, key


async def _async_load(store: RedisStore, keys: list[str], out: Outcome, workers: int,
                      stop: threading.Event) -> None:
    async def worker(n: int) -> None:
        rnd = random.Random(n)
        while not stop.is_set():
            op, name, key = _one_op(out, keys, rnd)
            start = time.monotonic()
            try:
                got = await store.aexecute(op)
            except StoreError as exc:
                out.record_error(start, exc, key)
                await asyncio.sleep(0.01)  # as a client backing off after a 503
            else:
                if name is not None and got is True:
                    out.acked.setdefault(key, set()).add(name)
            out.ops += 1

    await asyncio.gather(*(worker(n) for n in range(workers)))


def _sync_load(store: RedisStore, keys: list[str], out: Outcome, workers: int,
               stop: threading.Event) -> None:
    lock = threading.Lock()

    def worker(n: int) -> None:
        rnd = random.Random(n)
        while not stop.is_set():
            with lock:
                op, name, key = _one_op(out, keys, rnd)
            start = time.monotonic()
            try:
                got = store.execute(op)
            except StoreError as exc:
                with lock:
                    out.record_error(start, exc, key)
                time.sleep(0.01)
            else:
                if name is not None and got is True:
                    with lock:
                        out.acked.setdefault(key, set()).add(name)
            with lock:
                out.ops += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def restart(cluster: redis_servers.Cluster, victim: redis_servers.RedisServer, outage: float,
            times: dict[str, float], limit: float = 30.0) -> None:
    """kill -9 ``victim``, keep it down ``outage`` s, start it, wait for the cluster to be ok."""
    times["kill"] = time.monotonic()
    victim.kill()
    time.sleep(outage)
    victim.start()  # same port, nodes.conf and append-only file; returns once it answers PING
    times["started"] = time.monotonic()
    deadline = time.monotonic() + limit
    while not cluster.healthy():
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster not ok {limit}s after the restart")
        time.sleep(0.01)
    times["ok"] = time.monotonic()


@dataclass
class Result:
    ops: int
    after: int
    during: int
    last_after: float | None
    lost: int
    acked: int
    kinds_after: Counter[str]
    kinds_during: Counter[str]
    rejoin: float
    bystanders: int  # errors, at any time, on sessions of the masters that stayed up


def one_run(cluster: redis_servers.Cluster, run: int, args: argparse.Namespace) -> Result:
    prefix = f"cr{secrets.token_hex(3)}:"
    url = f"{cluster.url}?prefix={prefix}"
    store: RedisStore
    if args.client == "stock":
        from urllib.parse import urlsplit
        store = StockClusterStore.from_url(urlsplit(url))
    else:
        opened = open_store(url)
        assert isinstance(opened, RedisStore)
        store = opened
    keys = [secrets.token_hex(32) for _ in range(args.sessions)]
    out = Outcome()
    stop = threading.Event()
    times: dict[str, float] = {}
    victim = cluster.servers[run % len(cluster.servers)]
    on_victim = cluster.owned_by(victim, keys)

    def fault_then_stop() -> None:
        try:
            time.sleep(args.warmup)
            restart(cluster, victim, args.outage, times)
            time.sleep(args.after)
        finally:
            stop.set()

    try:
        if args.face == "async":

            async def main() -> None:
                try:
                    for k in keys:
                        assert await store.aexecute(Create(k, _record(_now())))
                    fault = asyncio.wrap_future(FAULTS.submit(fault_then_stop))
                    await _async_load(store, keys, out, args.workers, stop)
                    await fault
                finally:
                    await store.aclose()

            asyncio.run(main())
        else:
            for k in keys:
                assert store.execute(Create(k, _record(_now())))
            fault = FAULTS.submit(fault_then_stop)
            _sync_load(store, keys, out, args.workers, stop)
            fault.result()
        # Read back with a fresh store (sync): every acknowledged field is there.
        lost = 0
        check = open_store(url)
        try:
            for k, names in out.acked.items():
                got = check.execute(Load(k, _now()))
                lost += len(names) if got is None else len(names - set(got.fields))
        finally:
            check.close()
    finally:
        store.close()
        redis_servers.delete_prefix(list(cluster.clients()), prefix)
    ok = times["ok"]
    after = [e for e in out.errors if e[0] >= ok]
    during = [e for e in out.errors if e[0] < ok]
    return Result(
        ops=out.ops, after=len(after), during=len(during),
        last_after=max(e[1] for e in after) - ok if after else None,
        lost=lost, acked=sum(len(v) for v in out.acked.values()),
        kinds_after=Counter(e[2] for e in after), kinds_during=Counter(e[2] for e in during),
        rejoin=ok - times["started"],
        bystanders=sum(1 for e in out.errors if e[3] not in on_victim),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face", choices=["async", "sync"], default="async")
    parser.add_argument("--client", choices=["store", "stock"], default="store",
                        help="store: the store as shipped; stock: redis-py's plain Cluster clients")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=30, help="concurrent loops")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the kill")
    parser.add_argument("--outage", type=float, default=1.0, help="seconds the master stays down")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of load after cluster ok")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sk-cluster-restart-"))
    cluster = FAULTS.submit(lambda: redis_servers.Cluster(workdir / "cluster", persistent=True).start()
                            ).result()
    print(f"face={args.face} client={args.client} workers={args.workers} sessions={args.sessions} "
          f"outage={args.outage:g}s, after ok {args.after:g}s", flush=True)
    results: list[Result] = []
    try:
        for run in range(args.runs):
            r = one_run(cluster, run, args)
            results.append(r)
            last = "-" if r.last_after is None else f"{r.last_after:.2f}s"
            print(f"run {run + 1}: ops {r.ops}, errors after ok {r.after} (last {last}), during outage "
                  f"{r.during}, on the other masters' sessions {r.bystanders}, acked writes {r.acked}, "
                  f"lost {r.lost}, rejoin {r.rejoin:.2f}s", flush=True)
            for kind, n in r.kinds_after.most_common(4):
                print(f"    after ok x{n}: {kind}")
            for kind, n in r.kinds_during.most_common(3):
                print(f"    during   x{n}: {kind}")
    finally:
        FAULTS.submit(cluster.stop).result()
        shutil.rmtree(workdir, ignore_errors=True)
    afters = [r.after for r in results]
    print(f"\nerrors after ok per run: {afters} (median {statistics.median(afters):g}); "
          f"runs with 0: {afters.count(0)}/{len(afters)}; errors on the other masters' sessions per run: "
          f"{[r.bystanders for r in results]}; lost writes: {sum(r.lost for r in results)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
