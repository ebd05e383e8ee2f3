"""A million sessions: purge rate under live traffic, and what a session costs in memory and disk.

    .venv/bin/python bench/scale.py                          # 1,000,000 per store
    .venv/bin/python bench/scale.py --sessions 100000 --stores sqlite,postgres

For SQLite (a file in a temporary directory) and PostgreSQL (``--postgres``, a table of its
own, dropped afterwards):

1. create ``--live`` live sessions through the store;
2. bulk-insert ``--sessions`` expired ones (executemany / COPY; see ``scale_fill``), and
   measure PostgreSQL's bytes per row (``pg_total_relation_size`` / rows);
3. start another process that reads and writes the live sessions through its own store
   (``scale_traffic``: Load + Apply per request, ``--rate`` requests per second);
4. after ``--baseline`` seconds, purge with the store's own ``purge(now, batch)`` (batches of
   ``--batch``, each its own short transaction) while that traffic goes on;
5. report the purge rate, the traffic's latency before and during the purge, and errors
   (exceptions, or a live session that went missing), which must be 0; check that every live
   session survived and no expired one did.

For Redis (``--redis``, a key prefix of its own; never FLUSHDB): write ``--sessions`` live
sessions with the store's own Create plans, pipelined; report ``used_memory`` growth per
session and ``MEMORY USAGE`` of sampled session keys; then delete every key under the prefix.

Bounded: the whole run stops after ``--max-seconds`` (cleanup still runs). Exit status 1 when
any error was seen.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_fill
import scale_traffic

from sessionkeeper import Store, open_store
from sessionkeeper.core.records import Create

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def progress(what: str, total: int) -> Callable[[int], None]:
    started = time.perf_counter()
    last = [0.0]

    def report(done: int) -> None:
        t = time.perf_counter() - started
        if t - last[0] >= 10 or done == total:
            last[0] = t
            log(f"  {what}: {done:,}/{total:,} ({done / max(t, 1e-9):,.0f}/s)")

    return report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[scale_traffic.Sample]) -> dict[str, Any]:
    lat = [s[1] * 1000 for s in samples]
    return {
        "requests": len(samples),
        "p50_ms": round(pct(lat, 0.50), 3),
        "p99_ms": round(pct(lat, 0.99), 3),
        "max_ms": round(max(lat), 3) if lat else None,
        "errors": sum(1 for s in samples if s[2] == 1),
        "lost": sum(1 for s in samples if s[2] == 2),
    }


# ---- SQL stores: fill, purge under traffic -----------------------------------------------------


Fill = Callable[[Store, Iterator[Any]], int]


def purge_under_traffic(kind: str, url: str, options: dict[str, Any], args: argparse.Namespace,
                        fill: Fill, size: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    store = open_store(url, **options)
    result: dict[str, Any] = {"store": kind, "sessions": args.sessions}
    traffic = None
    try:
        now = time.time()
        live = [scale_fill.new_key() for _ in range(args.live)]
        for i, key in enumerate(live):
            rec = scale_fill.record(now, user_id=f"live{i}" if i % 2 == 0 else None)
            if not store.execute(Create(key, rec)):
                raise SystemExit(f"{kind}: could not create a live session")
        log(f"{kind}: {args.live:,} live sessions created; inserting {args.sessions:,} expired ones")
        rows = scale_fill.expired_sql_rows(args.sessions, now, args.signed_in_share)
        first = next(rows)
        started = time.perf_counter()
        n = fill(store, _chain(first, rows))
        result["fill_rows_per_s"] = round(n / (time.perf_counter() - started))
        scale_fill.check_readable(store, *scale_fill.row_record(first))
        result.update(size())
        log(f"{kind}: filled at {result['fill_rows_per_s']:,} rows/s; size {size_text(result)}")

        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        traffic = ctx.Process(target=scale_traffic.run, name=f"traffic-{kind}", daemon=True, args=(
            url, options, live, args.rate, stop, sender, args.max_seconds))
        traffic.start()
        sender.close()
        time.sleep(args.baseline + 2)  # +2: the worker's start-up (imports, connect) is not baseline
        log(f"{kind}: purging (batch {args.batch}) while the traffic runs")
        purge_start = time.monotonic()
        t0 = time.perf_counter()
        purged = store.purge(time.time(), args.batch)
        purge_s = time.perf_counter() - t0
        purge_end = time.monotonic()
        time.sleep(0.5)
        stop.set()
        samples, errors = receiver.recv()
        traffic.join(30)
        traffic = None

        before = [s for s in samples if purge_start - args.baseline <= s[0] < purge_start]
        during = [s for s in samples if purge_start <= s[0] < purge_end]
        left_live = store.count(time.time())
        result.update({
            "purged": purged,
            "purge_seconds": round(purge_s, 2),
            "purge_rows_per_s": round(purged / purge_s),
            "traffic_rate": args.rate,
            "before": summary(before),
            "during": summary(during),
            "traffic_errors": errors,
            "live_after": left_live,
        })
        problems = []
        if purged != args.sessions:
            problems.append(f"purged {purged:,}, expected {args.sessions:,}")
        if left_live != args.live:
            problems.append(f"{left_live:,} live sessions after the purge, expected {args.live:,}")
        if any(s[2] for s in samples):
            problems.append(f"{sum(1 for s in samples if s[2])} traffic errors: {errors}")
        result["problems"] = problems
        log(f"{kind}: purged {purged:,} in {purge_s:.1f} s ({result['purge_rows_per_s']:,} rows/s); "
            f"traffic p50/p99 before {result['before']['p50_ms']}/{result['before']['p99_ms']} ms, "
            f"during {result['during']['p50_ms']}/{result['during']['p99_ms']} ms; "
            f"problems: {problems or 'none'}")
        return result
    finally:
        if traffic is not None:
            traffic.kill()
        store.close()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def size_text(result: dict[str, Any]) -> str:
    if "pg_bytes_per_row" in result:
        return (f"{result['pg_total_bytes'] / 2**20:,.0f} MiB total, "
                f"{result['pg_bytes_per_row']:,.0f} bytes/row (heap {result['pg_heap_bytes_per_row']:,.0f}, "
                f"indexes {result['pg_index_bytes_per_row']:,.0f})")
    if "file_bytes_per_row" in result:
        return f"{result['file_bytes'] / 2**20:,.0f} MiB, {result['file_bytes_per_row']:,.0f} bytes/row"
    return "?"


def run_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="skscale-"))
    path = tmp / "db" / "sessions.db"
    path.parent.mkdir(mode=0o700)
    url = "sqlite:///" + quote(str(path))
    try:
        def fill(store: Store, rows: Iterator[Any]) -> int:
            return scale_fill.fill_sqlite(str(path), rows, progress("sqlite insert", args.sessions))

        def size() -> dict[str, Any]:
            total = sum(p.stat().st_size for p in path.parent.iterdir())
            return {"file_bytes": total, "file_bytes_per_row": round(total / (args.sessions + args.live))}

        return purge_under_traffic("sqlite", url, {}, args, fill, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    table = f"skbench_scale_{os.getpid()}_{secrets.token_hex(3)}"
    url = args.postgres
    options = {"table": table, "create_schema": True}
    admin = psycopg.connect(url, autocommit=True)
    try:
        def fill(store: Store, rows: Iterator[Any]) -> int:
            n = scale_fill.fill_postgres(url, table, rows, progress("postgres COPY", args.sessions))
            # What autovacuum would soon do after a bulk load: fresh statistics for the planner.
            admin.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
            return n

        def size() -> dict[str, Any]:
            query = sql.SQL("SELECT (SELECT count(*) FROM {}), pg_total_relation_size(%s), "
                            "pg_relation_size(%s), pg_indexes_size(%s)").format(sql.Identifier(table))
            rows, total, heap, idx = admin.execute(query, (table, table, table)).fetchone()
            return {"pg_rows": rows, "pg_total_bytes": total, "pg_bytes_per_row": round(total / rows),
                    "pg_heap_bytes_per_row": round(heap / rows), "pg_index_bytes_per_row": round(idx / rows)}

        return purge_under_traffic("postgresql", url, options, args, fill, size)
    finally:
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        admin.close()


# ---- Redis: memory per live session ------------------------------------------------------------


def run_redis(args: argparse.Namespace) -> dict[str, Any]:
    import redis

    prefix = f"skbench:scale:{os.getpid()}:{secrets.token_hex(3)}:"
    store: Any = open_store(args.redis, prefix=prefix)
    client = redis.Redis.from_url(args.redis)
    pattern = prefix.replace("*", r"\*") + "*"
    result: dict[str, Any] = {"store": "redis", "sessions": args.sessions, "prefix": prefix}
    try:
        client.ping()
        used_before = int(client.info("memory")["used_memory"])
        started = time.perf_counter()
        sample = scale_fill.fill_redis(store, args.sessions, time.time(), args.signed_in_share,
                                       progress("redis create", args.sessions))
        result["fill_sessions_per_s"] = round(args.sessions / (time.perf_counter() - started))
        used_after = int(client.info("memory")["used_memory"])
        keys = int(sum(1 for _ in client.scan_iter(match=pattern, count=10_000)))
        usage = [int(client.memory_usage(store.plans.layout.session(k), samples=0) or 0) for k in sample]
        index_keys = [k for k in client.scan_iter(match=prefix.replace("*", r"\*") + "u:*", count=10_000)]
        index_usage = [int(client.memory_usage(k, samples=0) or 0) for k in index_keys[:1000]]
        result.update({
            "keys": keys,
            "used_memory_delta": used_after - used_before,
            "used_memory_per_session": round((used_after - used_before) / args.sessions),
            "memory_usage_session_key_avg": round(sum(usage) / len(usage)),
            "memory_usage_index_key_avg": round(sum(index_usage) / len(index_usage)) if index_usage else None,
            "user_index_keys": len(index_keys),
        })
        check = store.load(sample[0], time.time())
        if check is None or check.fields.get("cart") != scale_fill.CART:
            raise SystemExit("redis: a written session does not read back")
        log(f"redis: {args.sessions:,} live sessions at {result['fill_sessions_per_s']:,}/s; "
            f"used_memory +{result['used_memory_delta'] / 2**20:,.0f} MiB = "
            f"{result['used_memory_per_session']:,} bytes/session; MEMORY USAGE of a session key "
            f"{result['memory_usage_session_key_avg']:,} bytes (avg of {len(usage)}), "
            f"of a user index key {result['memory_usage_index_key_avg']} bytes")
        return result
    finally:
        deleted = _delete_prefix(client, pattern)
        left = sum(1 for _ in client.scan_iter(match=pattern, count=10_000))
        log(f"redis: deleted {deleted:,} keys under {prefix!r}; {left} left")
        result["cleanup_left"] = left
        store.close()
        client.close()


def _delete_prefix(client: Any, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=10_000):
        batch.append(key)
        if len(batch) >= 5_000:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


# ---- main -----------------------------------------------------------------------------------------


class OutOfTime(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000,
                        help="sessions per store (default 1,000,000)")
    parser.add_argument("--stores", default="sqlite,postgres,redis", help="comma-separated subset")
    parser.add_argument("--live", type=int, default=1000, help="live sessions the traffic uses")
    parser.add_argument("--rate", type=float, default=200, help="traffic requests per second")
    parser.add_argument("--baseline", type=float, default=10, help="seconds of traffic before the purge")
    parser.add_argument("--batch", type=int, default=500, help="purge batch size (the store's default)")
    parser.add_argument("--signed-in-share", type=float, default=0.5,
                        help="share of sessions with a user (and a user index entry)")
    parser.add_argument("--postgres", default=PG_DEFAULT, help=f"server (default {PG_DEFAULT})")
    parser.add_argument("--redis", default=REDIS_DEFAULT, help=f"server (default {REDIS_DEFAULT})")
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop after this long")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    def out_of_time(signum: int, frame: Any) -> None:
        raise OutOfTime(f"stopped after --max-seconds={args.max_seconds:g}")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.max_seconds))
    runners = {"sqlite": run_sqlite, "postgres": run_postgres, "redis": run_redis}
    results = []
    started = time.perf_counter()
    try:
        for name in args.stores.split(","):
            results.append(runners[name.strip()](args))
    finally:
        signal.alarm(0)
    total = time.perf_counter() - started
    log(f"done in {total:.0f} s")
    report = {"command": " ".join(["bench/scale.py", *(argv if argv is not None else sys.argv[1:])]),
              "cpus": os.cpu_count(), "seconds": round(total), "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = [p for r in results for p in r.get("problems", [])] + [
        f"redis: {r['cleanup_left']} keys left" for r in results if r.get("cleanup_left")]
    for problem in failed:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
