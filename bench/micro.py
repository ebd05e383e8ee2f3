"""In-process cost of each session layer, without a server or a network client in the way.

    bench/.venv/bin/python bench/micro.py            # every variant, µs per request
    bench/.venv/bin/python bench/micro.py --n 20000 --only starlette

It calls the bench apps (bench/apps) directly, ASGI or WSGI, with a session cookie obtained by
a first write, and reports the median µs per request over several alternating rounds and the
added cost over the framework's no-session app. Stores with I/O (Redis, PostgreSQL) include
their round-trip latency. Each variant runs in its own process, pinned to one core, because
the apps configure themselves from the environment at import. Set PYTHONPATH to a scratch
copy of ``src`` to measure a change to sessionkeeper before making it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"

VARIANTS = [
    ("flask/none", "flask", "none", None),
    ("flask/sk-memory", "flask", "sk", "memory://"),
    ("flask/signed-cookie", "flask", "signed", None),
    ("starlette/none", "starlette", "none", None),
    ("starlette/sk-memory", "starlette", "sk", "memory://"),
    ("starlette/signed-cookie", "starlette", "signed", None),
    ("flask/sk-redis", "flask", "sk", "redis"),
    ("flask/flask-session-redis", "flask", "flask-session", None),
    ("starlette/sk-redis", "starlette", "sk", "redis"),
    ("starlette/starsessions-redis", "starlette", "starsessions", None),
]


def child(framework: str, workload: str, n: int) -> float:
    """Run in the variant's process: µs per request, best of a few batches."""
    sys.path.insert(0, str(APPS))
    if framework == "flask":
        from flask_app import app as wsgi_app

        cookie = ""

        def call(path: str) -> None:
            nonlocal cookie
            got: list[str] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
                got.extend(v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie")

            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "SERVER_NAME": "x",
                "SERVER_PORT": "80",
                "wsgi.url_scheme": "http",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": "x",
                "wsgi.input": None,
                "wsgi.errors": sys.stderr,
            }
            if cookie:
                environ["HTTP_COOKIE"] = cookie
            for chunk in wsgi_app(environ, start_response):
                del chunk
            if got:
                cookie = got[-1]

        call("/write")
        path = f"/{workload}"
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                call(path)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best

    from starlette_app import app as asgi_app

    async def main() -> float:
        cookie = b""

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def call(path: str) -> None:
            nonlocal cookie
            got: list[bytes] = []

            async def send(msg: dict[str, Any]) -> None:
                if msg["type"] == "http.response.start":
                    got.extend(v.split(b";", 1)[0] for k, v in msg.get("headers", ()) if k == b"set-cookie")

            headers = [(b"host", b"x")] + ([(b"cookie", cookie)] if cookie else [])
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 1),
                "server": ("x", 80),
            }
            await asgi_app(scope, receive, send)
            if got:
                cookie = got[-1]

        await call("/write")
        path = f"/{workload}"
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                await call(path)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best

    return asyncio.run(main())


def diff_cost(rounds: int) -> None:
    """µs to write one changed dict value whole (encode) vs as a patch (decode the loaded
    text, tree of the new value, structural diff: what a patched write adds, core/diff.py),
    for a small (100 B), typical (2 KB) and large (60 KB) session held in one dict."""
    from sessionkeeper.core import codec
    from sessionkeeper.core.diff import diff

    print(f"{'session':8} {'encode whole µs':>16} {'diff µs':>9} {'ops':>4}")
    for label, size in (("100 B", 100), ("2 KB", 2_000), ("60 KB", 60_000)):
        value: dict[str, Any] = {}
        i = 0
        while len(codec.encode("v", value)) < size:
            value[f"item{i}"] = {"qty": i, "name": f"product {i}", "tags": ["a", "b"]}
            i += 1
        stored = codec.encode("v", value)
        changed = codec.decode(stored)
        changed["new item"] = {"qty": 1, "name": "added", "tags": []}  # one entry added
        n = max(20, 2_000_000 // size)
        enc, dif = [], []
        ops: Any = ()
        for _ in range(rounds * 3):
            t0 = time.perf_counter()
            for _ in range(n):
                codec.encode("v", changed)
            enc.append((time.perf_counter() - t0) / n * 1e6)
            t0 = time.perf_counter()
            for _ in range(n):
                ops = diff(json.loads(stored), codec.to_json_tree(changed))
            dif.append((time.perf_counter() - t0) / n * 1e6)
        print(f"{label:8} {min(enc):16.1f} {min(dif):9.1f} {len(ops or ()):4}")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def wire_cost(redis_url: str, n: int, rounds: int) -> None:
    """CPU µs per command (issue 14): one EVALSHA the size of a typical Apply (22 arguments)
    sent through redis-py's ``execute_command`` and through the store's own path
    (``stores/_redis_wire.py``), async and sync, and a whole store Load and Apply; and, as the
    floor no client can go below, the same bytes over a bare socket (one send, one read); and
    the other maintained clients the issue named (coredis, valkey-glide, async and sync), where
    installed. CPU
    time of this process (user + system), so the round trip's wait is not counted, but the
    socket calls are; the best of ``rounds`` batches."""
    import redis
    import redis.asyncio

    from sessionkeeper import open_store
    from sessionkeeper.core.records import Apply, Create, Delta, Load, Meta, Record
    from sessionkeeper.stores._redis_wire import AsyncWire, SyncWire, pack

    script = "return redis.call('HGET', KEYS[1], 'x')"
    sha = redis.Redis.from_url(redis_url).script_load(script)
    args = ("EVALSHA", sha, 1, b"wire:{bench}", *(b"argument-%d" % i for i in range(18)))
    key = "0" * 64
    now = time.time()
    meta = Meta(now, now, now + 1800, now + 36000, None, None,
                {"ip": "127.0.0.1", "ua": "bench", "net": "127.0.0.0/24", "rot": repr(now)})
    delta = Delta(set={"counter": "2"}, meta=meta)

    def best(fn: Any) -> float:
        out = float("inf")
        for _ in range(rounds):
            c0 = time.process_time()
            fn()
            out = min(out, (time.process_time() - c0) / n * 1e6)
        return out

    host, port = _host_port(redis_url)
    packed = pack((args,))

    async def araw() -> None:  # the floor: the same bytes over a bare asyncio stream
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(packed)
        await reader.readuntil(b"\r\n")
        c0 = time.process_time()
        for _ in range(n):
            writer.write(packed)
            await reader.readuntil(b"\r\n")  # the script's reply is one line ($-1)
        raw["async raw socket (floor)"] = (time.process_time() - c0) / n * 1e6
        writer.close()

    def sraw() -> None:  # the floor, blocking: one sendall, one recv
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            sock.sendall(packed)
            reply = sock.recv(65536)
            while not reply.endswith(b"\r\n"):  # the whole one-line reply, never a step behind
                more = sock.recv(65536)
                if not more:
                    raise SystemExit("Redis closed the connection")
                reply += more
        sock.close()

    raw: dict[str, float] = {}

    async def amain() -> dict[str, float]:
        for _ in range(rounds):
            before = raw.get("async raw socket (floor)", float("inf"))
            await araw()
            raw["async raw socket (floor)"] = min(before, raw["async raw socket (floor)"])
        client = redis.asyncio.Redis.from_url(redis_url, protocol=2)
        pool = redis.asyncio.ConnectionPool.from_url(redis_url, protocol=2, socket_timeout=None)
        wire = AsyncWire(pool, 5.0)
        store = open_store(redis_url, prefix="micro:")
        await store.aexecute(Create(key, Record({"counter": "1"}, meta)))
        out = {}
        paths: list[tuple[str, Any]] = [
            ("async execute_command", lambda: client.execute_command(*args)),
            ("async store wire", lambda: wire.call((args,))),
            ("async store Load", lambda: store.aexecute(Load(key, now))),
            ("async store Apply", lambda: store.aexecute(Apply(key, delta, now))),
        ]
        others = await _other_clients(host, port, _db(redis_url), args)
        paths += [(name, fn) for name, fn, _ in others]
        for name, fn in paths:
            for _ in range(200):
                await fn()
            res = float("inf")
            for _ in range(rounds):
                c0 = time.process_time()
                for _ in range(n):
                    await fn()
                res = min(res, (time.process_time() - c0) / n * 1e6)
            out[name] = res
        await client.aclose()
        await wire.aclose()
        await store.aclose()
        for _, _, close in others:
            await close()
        return out

    measured = asyncio.run(amain())
    results = {**raw, **measured}  # the floor first
    results["sync raw socket (floor)"] = best(sraw)
    client = redis.Redis.from_url(redis_url, protocol=2)
    wire = SyncWire(redis.ConnectionPool.from_url(redis_url, protocol=2))
    store = open_store(redis_url, prefix="micro:")
    sync_paths: list[tuple[str, Any]] = [
        ("sync execute_command", lambda: client.execute_command(*args)),
        ("sync store wire", lambda: wire.call((args,))),
        ("sync store Load", lambda: store.execute(Load(key, now))),
        ("sync store Apply", lambda: store.execute(Apply(key, delta, now))),
    ]
    glide_sync = _glide_sync(host, port, _db(redis_url), args)
    if glide_sync is not None:
        sync_paths.append(("sync valkey-glide", glide_sync[0]))
    for name, one in sync_paths:
        for _ in range(200):
            one()
        results[name] = best(lambda one=one: [one() for _ in range(n)])  # type: ignore[misc]
    store.close()
    if glide_sync is not None:
        glide_sync[1]()
    print(f"{'path':28} {'CPU µs per command':>19}")
    for name, us in results.items():
        print(f"{name:28} {us:19.1f}")
    print("(valkey-glide runs its I/O on a Rust thread: its CPU is counted, as for the others,"
          " as this process's user + system time)")


def _db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path else 0


async def _other_clients(host: str, port: int, db: int, args: tuple[Any, ...]) -> list[tuple[str, Any, Any]]:
    """The other maintained asyncio clients the issue names, where installed (the bench venv
    installs them): the same EVALSHA through each one's own call for it."""
    out: list[tuple[str, Any, Any]] = []
    sha, keys, rest = args[1], [args[3]], list(args[4:])
    try:
        import coredis
    except ImportError:
        pass
    else:
        cd = coredis.Redis(host=host, port=port, db=db)
        await cd.__aenter__()
        out.append(("async coredis", lambda: cd.evalsha(sha, keys=keys, args=rest),
                    lambda: cd.__aexit__(None, None, None)))
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress
    except ImportError:
        pass
    else:
        config = GlideClientConfiguration([NodeAddress(host, port)], database_id=db)
        gl = await GlideClient.create(config)
        cmd = [a if isinstance(a, bytes) else str(a) for a in args]
        out.append(("async valkey-glide", lambda: gl.custom_command(cmd), gl.close))
    return out


def _glide_sync(host: str, port: int, db: int, args: tuple[Any, ...]) -> tuple[Any, Any] | None:
    try:
        from glide_sync import GlideClient, GlideClientConfiguration, NodeAddress
    except ImportError:
        return None
    gl = GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)], database_id=db))
    cmd = [a if isinstance(a, bytes) else str(a) for a in args]
    return (lambda: gl.custom_command(cmd)), gl.close


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000, help="requests per batch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", action="append", default=[], help="variants whose name contains this")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="Redis for the Redis variants")
    p.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help=argparse.SUPPRESS)
    p.add_argument("--diff", action="store_true", help="the cost of diffing a changed value (issue 12)")
    p.add_argument("--wire", action="store_true",
                   help="CPU per Redis command: redis-py's execute_command vs the store's own path")
    args = p.parse_args()
    if args.diff:
        diff_cost(args.rounds)
        return
    if args.wire:
        wire_cost(args.redis, args.n, max(args.rounds, 5))
        return
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.n)))
        return
    chosen = [v for v in VARIANTS if not args.only or any(o in v[0] for o in args.only)]
    res: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, framework, session, store in chosen:
            for workload in ("read", "write"):
                url = args.redis if store == "redis" else store or ""
                env = {**os.environ, "BENCH_SESSION": session, "BENCH_STORE": url, "BENCH_REDIS": args.redis}
                out = subprocess.run(
                    [
                        "taskset",
                        "-c",
                        "0",
                        sys.executable,
                        __file__,
                        "--n",
                        str(args.n),
                        "--child",
                        framework,
                        workload,
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res.setdefault((name, workload), []).append(json.loads(out.stdout))
    print(f"{'variant':26} {'load':6} {'µs/req':>8} {'added µs':>9}")
    for (name, workload), xs in res.items():
        us = statistics.median(xs)
        base = res.get((name.split("/")[0] + "/none", workload))
        added = us - statistics.median(base) if base else float("nan")
        print(f"{name:26} {workload:6} {us:8.1f} {added:9.1f}")


if __name__ == "__main__":
    main()
