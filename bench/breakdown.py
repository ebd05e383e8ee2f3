#!/usr/bin/env python3
"""Where a server's CPU goes per request: py-spy's shares times the CPU measured from /proc.

    python3 bench/run.py --only redis --breakdown            # with the load tables
    python3 bench/breakdown.py                                # alone: every store-backed variant
    python3 bench/breakdown.py --only starlette/sk-redis --workload write --duration 20
    python3 bench/breakdown.py --merge                        # also into bench/results/latest.json
    python3 bench/breakdown.py --classify profile.txt --cpu-us 700   # classify a saved profile

For each store-backed variant (Redis or PostgreSQL; sessionkeeper and each peer) and each of
/read and /write: start its server pinned to core 0 as ``bench/run.py`` does, warm it up, attach
``py-spy record --format raw`` (collapsed stacks, idle samples left out, py-spy pinned to wrk's
core 1) to the process serving requests (uvicorn, or gunicorn's worker), and run wrk for the
given seconds. Around the wrk run the server's CPU (utime + stime of its process tree, from
/proc) and its store's CPU (Redis: ``INFO cpu`` and ``INFO commandstats``; PostgreSQL: the
backends of the bench database) are read and divided by the requests served. Each sample goes
to one category by the rules below; a category's µs per request is its share of the samples
times the server's measured CPU µs per request.

Classification (``RULES``, in order): walk a sample's frames from the innermost outward; the
first frame that matches a rule decides, and among the rules the first match wins. Frames no
rule names (the standard library's json, contextlib, dataclass ``__init__``s, asyncio's
scheduling calls ...) are skipped, so their time counts with the code that called them: JSON
encoding inside the store plan is store plan, ``loop.call_at`` inside ``wait_for`` is the timeout.
py-spy runs without ``--native``, so a C call (a socket send made by uvloop or by
``sock.sendall``) counts with the innermost Python frame: the few functions that exist to make
socket calls are named in the first rules; a write made from inside a larger function (uvicorn's
``RequestResponseCycle.send``) counts with that function. A sample with no Python frame at all,
or none that a rule names, is "other" (the JSON keeps its most frequent innermost frames).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness

LIBRARY = "library: flow, session, codec, adapter"
STORE_PLAN = "store plan (sessionkeeper/stores)"
REDIS_CODEC = "Redis commands encoded + replies parsed"
REDIS_PLUMBING = "Redis client plumbing (connections, pool, retry, cluster, hooks)"
PSYCOPG = "psycopg (client, pool)"
TIMEOUTS = "asyncio wait_for / timeouts"
LOOP = "event loop + socket syscalls"
SERVER = "framework + server + app"
OTHER = "other"
CATEGORIES = [LIBRARY, STORE_PLAN, REDIS_CODEC, REDIS_PLUMBING, PSYCOPG, TIMEOUTS, LOOP, SERVER, OTHER]
# The library's own work per request: everything but the framework, the server and socket work.
OWN_WORK = (LIBRARY, STORE_PLAN, REDIS_CODEC, REDIS_PLUMBING, PSYCOPG, TIMEOUTS)


@dataclass(frozen=True)
class Rule:
    """Frames of a file (``path`` ends in .py) or a package (``path`` ends in /), optionally
    only the named functions (a method matches by its own name, without its class)."""

    category: str
    path: str
    functions: tuple[str, ...] = ()

    def matches(self, function: str, path: str) -> bool:
        if not (path == self.path or (self.path.endswith("/") and path.startswith(self.path))):
            return False
        return not self.functions or function.rsplit(".", 1)[-1] in self.functions


RULES = (
    # functions that exist to make socket calls (their C callee is not sampled without --native)
    Rule(LOOP, "redis/_parsers/socket.py", ("_read_from_socket",)),  # recv_into
    Rule(LOOP, "redis/connection.py", ("send_packed_command",)),  # sendall (sync client)
    Rule(LOOP, "gunicorn/util.py", ("write", "write_nonblock", "close", "close_graceful")),
    Rule(LOOP, "gunicorn/http/unreader.py", ("chunk",)),  # recv
    Rule(LOOP, "gunicorn/workers/sync.py", ("accept", "wait", "run_for_one", "run_for_multiple")),
    Rule(LOOP, "psycopg/_cursor_base.py", ("_send_query_prepared", "_send_query", "_send_prepare")),  # libpq
    Rule(LOOP, "psycopg/waiting.py"),  # psycopg's wait for its socket, through the event loop
    Rule(LOOP, "socket.py"),
    Rule(LOOP, "selectors.py"),
    Rule(LOOP, "ssl.py"),
    # asyncio timeouts: redis-py wraps sends in wait_for and reads in asyncio.timeout
    Rule(TIMEOUTS, "asyncio/tasks.py", ("wait_for",)),
    Rule(TIMEOUTS, "asyncio/timeouts.py"),
    Rule(TIMEOUTS, "async_timeout/"),
    # the event loop; with uvloop its C code shows as asyncio.Runner.run, the outermost frame
    Rule(LOOP, "asyncio/runners.py"),
    Rule(LOOP, "asyncio/base_events.py", ("run_forever", "run_until_complete", "_run_once")),
    Rule(LOOP, "asyncio/events.py", ("_run",)),
    Rule(LOOP, "asyncio/selector_events.py"),
    Rule(LOOP, "asyncio/streams.py"),  # StreamReader/Writer over the transport's socket calls
    Rule(LOOP, "uvloop/"),
    # store clients
    Rule(REDIS_CODEC, "redis/_parsers/"),
    Rule(REDIS_CODEC, "hiredis/"),
    Rule(REDIS_CODEC, "redis/connection.py", ("pack_command", "pack_commands")),
    Rule(REDIS_CODEC, "redis/asyncio/connection.py", ("pack_command", "pack_commands")),
    Rule(REDIS_PLUMBING, "redis/"),
    Rule(PSYCOPG, "psycopg/"),
    Rule(PSYCOPG, "psycopg_pool/"),
    Rule(PSYCOPG, "psycopg_binary/"),
    # sessionkeeper's own path to one Redis server does the client's job: counted as client work
    Rule(REDIS_CODEC, "sessionkeeper/stores/_redis_wire.py", ("pack",)),
    Rule(REDIS_PLUMBING, "sessionkeeper/stores/_redis_wire.py"),
    # the session library: sessionkeeper's store plan apart, the rest of it, or the peer's own code
    Rule(STORE_PLAN, "sessionkeeper/stores/"),
    Rule(LIBRARY, "sessionkeeper/"),
    Rule(LIBRARY, "starsessions/"),
    Rule(LIBRARY, "flask_session/"),
    Rule(LIBRARY, "django/contrib/sessions/"),
    Rule(LIBRARY, "django/core/cache/"),
    Rule(LIBRARY, "itsdangerous/"),
    # framework, server and the bench app
    Rule(SERVER, "starlette/"),
    Rule(SERVER, "flask/"),
    Rule(SERVER, "werkzeug/"),
    Rule(SERVER, "django/"),
    Rule(SERVER, "uvicorn/"),
    Rule(SERVER, "gunicorn/"),
    Rule(SERVER, "httptools/"),
    Rule(SERVER, "h11/"),
    Rule(SERVER, "anyio/"),
    Rule(SERVER, "click/"),
    Rule(SERVER, "apps/"),
)

FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?):(?P<line>\d+)\)$")
STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages/|dist-packages/)")


def short_path(path: str) -> str:
    """A frame's file as the rules name it: relative to site-packages, the stdlib, src/ or bench/."""
    for marker in ("/site-packages/", "/dist-packages/", "/src/", "/bench/"):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + len(marker) :]
    m = STDLIB.search(path)
    return path[m.end() :] if m else path  # py-spy already shortens paths found on sys.path


def classify(stack: str) -> tuple[str, str]:
    """(category, the deciding or innermost frame) of one collapsed stack, outermost first."""
    frames = [f for f in stack.split(";") if f]
    for frame in reversed(frames):
        m = FRAME.match(frame)
        if m is None:
            continue
        function, path = m["function"], short_path(m["path"])
        for rule in RULES:
            if rule.matches(function, path):
                return rule.category, frame
    return OTHER, frames[-1] if frames else "(no Python frame)"


def read_profile(path: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Samples per category, and per category the frames that decided it (line numbers
    dropped; for "other", the innermost frame)."""
    per: Counter[str] = Counter()
    frames: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        category, frame = classify(stack)
        per[category] += int(n)
        frames[category][re.sub(r":\d+\)$", ")", frame)] += int(n)
    return per, frames


def shares_to_us(per: Counter[str], cpu_us: float) -> dict[str, Any]:
    total = sum(per.values())
    shares = {c: per[c] / total if total else 0.0 for c in CATEGORIES}
    us = {c: shares[c] * cpu_us for c in CATEGORIES}
    return {
        "samples": total,
        "shares": {c: round(v, 4) for c, v in shares.items()},
        "us": {c: round(v, 1) for c, v in us.items()},
        "own_work_us": round(sum(us[c] for c in OWN_WORK), 1),
    }


def worker_pid(server_pid: int) -> int:
    """The process that serves requests: uvicorn itself, or gunicorn's (only) worker."""
    table = harness.proc_cpu()
    children = [pid for pid, (ppid, _, _) in table.items() if ppid == server_pid]
    return children[0] if children else server_pid


def run_queue_wait(pid: int) -> float:
    """Seconds ``pid``'s threads have been runnable but waiting for a core (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def measure(
    v: harness.Variant,
    env: dict[str, str],
    redis: harness.Redis,
    workload: str,
    duration: int,
    threads: int,
    connections: int,
    rate: int,
) -> dict[str, Any]:
    """One profiled wrk run of ``v`` on /``workload``: CPU per request and its breakdown."""
    server = harness.start_server(v, env)
    path = f"/{workload}"
    out = harness.RESULTS / f"pyspy-{v.name.replace('/', '_')}-{workload}.txt"
    out.unlink(missing_ok=True)
    try:
        harness.wrk(server.port, path, 2, threads, connections)  # warm: code paths, pools, sessions
        target = worker_pid(server.proc.pid)
        spy_log = out.with_suffix(".log")
        with spy_log.open("wb") as spy_out:
            spy = subprocess.Popen(
                [
                    *("taskset", "-c", harness.WRK_CORE),  # off the server's core
                    str(harness.VENV / "bin" / "py-spy"),
                    "record",
                    *("--pid", str(target)),
                    *("--format", "raw"),
                    *("--rate", str(rate)),
                    *("--duration", str(duration + 3)),
                    *("--output", str(out)),
                    # without pausing the server (pausing it for every sample cut its req/s by 4x
                    # in a test here); the price is an occasional torn stack, mostly in "other"
                    "--nonblocking",
                ],
                stdout=spy_out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        time.sleep(1.0)  # py-spy attaches
        probe = harness.probe_for(v, server.proc.pid, redis)
        before, waited = probe.read(), run_queue_wait(target)
        result = harness.wrk(server.port, path, duration, threads, connections)
        waited = run_queue_wait(target) - waited
        cpu = harness.CpuProbe.per_request(before, probe.read(), result["requests"])
        try:
            spy.wait(duration + 60)
        except subprocess.TimeoutExpired:
            harness.stop_process(spy)
    finally:
        harness.stop_process(server.proc)
    entry: dict[str, Any] = {
        "rps": round(result["rps"], 1),
        "requests": result["requests"],
        "errors": result["errors"],
        "cpu_us": round(cpu["cpu_us"], 1),
        "sys_us": round(cpu["sys_us"], 1),
        # runnable but waiting for a core: py-spy samples that time too (as running)
        "wait_us": round(waited / max(result["requests"], 1) * 1e6, 1),
        "store": harness.store_of(v),
        "store_us": round(cpu["store_us"], 1) if "store_us" in cpu else None,
        "redis_cmd_us": cpu.get("redis_cmd_us", {}),
        "profile": str(out.relative_to(harness.REPO)),
    }
    if not out.exists() or not out.stat().st_size:
        tail = spy_log.read_text(errors="replace").strip().splitlines()[-2:]
        entry["error"] = "py-spy wrote nothing (ptrace not allowed?): " + " | ".join(tail)[:300]
        return entry
    per, frames = read_profile(out)
    entry.update(shares_to_us(per, cpu["cpu_us"]))
    cpu_seconds = cpu["cpu_us"] * result["requests"] / 1e6
    # samples py-spy saw running / what the server's CPU time would give at this rate
    entry["coverage"] = round(entry["samples"] / rate / cpu_seconds, 2) if cpu_seconds else None
    # what is inside each category: its most frequent deciding frames, in µs per request
    per_sample = cpu["cpu_us"] / entry["samples"] if entry["samples"] else 0.0
    entry["top_frames"] = {
        c: [[f, round(n * per_sample, 1)] for f, n in frames[c].most_common(6)]
        for c in CATEGORIES
        if frames[c]
    }
    return entry


def breakdown_phase(
    variants: list[harness.Variant],
    urls: dict[str, dict[str, str]],
    redis: harness.Redis,
    duration: int,
    threads: int,
    connections: int,
    rate: int,
) -> dict[str, dict[str, Any]]:
    """``measure`` each available store-backed variant, /read and /write."""
    chosen = [v for v in variants if v.available and harness.store_of(v) is not None]
    harness.log(
        f"breakdown: {len(chosen)} store-backed variants x read/write x {duration} s under py-spy "
        f"({rate} samples/s)"
    )
    out: dict[str, dict[str, Any]] = {}
    for v in chosen:
        for workload in ("read", "write"):
            try:
                e = measure(v, urls[v.name], redis, workload, duration, threads, connections, rate)
            except RuntimeError as exc:
                harness.log(f"  ! {v.name} {workload}: {exc}")
                continue
            out.setdefault(v.name, {})[workload] = e
            seen = f"{e['samples']} samples, {e['coverage']}x of CPU" if "samples" in e else e.get("error")
            harness.log(f"  {v.name} {workload}: {e['cpu_us']:.0f} µs/req server CPU ({seen})")
    return out


def _cmds(mix: dict[str, float], top: int = 3) -> str:
    items = sorted(((k, v) for k, v in mix.items() if v >= 0.5), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.0f}" for k, v in items[:top]) or "-"


def breakdown_tables(bd: dict[str, dict[str, Any]], markdown: bool = False) -> str:
    """One table per framework and workload: categories down, variants across, µs per request."""
    parts: list[str] = []
    frameworks = list(dict.fromkeys(name.split("/", 1)[0] for name in bd))
    for fw in frameworks:
        for workload in ("read", "write"):
            cols = [
                (name, e[workload]) for name, e in bd.items() if name.startswith(f"{fw}/") and workload in e
            ]
            if not cols:
                continue
            head = [f"µs per {workload} request ({fw})", *(name.split("/", 1)[1] for name, _ in cols)]
            body: list[list[str]] = []
            for category in CATEGORIES:
                if category == PSYCOPG and not any(e.get("us", {}).get(PSYCOPG) for _, e in cols):
                    continue
                if category == STORE_PLAN and not any(e.get("us", {}).get(STORE_PLAN) for _, e in cols):
                    continue
                body.append([category, *(_us(e, category) for _, e in cols)])
            body.append(
                [
                    "= the library's own work (rows above the event loop)",
                    *(harness.fmt(e.get("own_work_us"), ".0f") for _, e in cols),
                ]
            )
            body.append(
                [
                    "server CPU in all (/proc; of which kernel)",
                    *(f"{e['cpu_us']:.0f} ({harness.fmt(e.get('sys_us'), '.0f')})" for _, e in cols),
                ]
            )
            if any(e.get("store") == "redis" for _, e in cols):
                body.append(
                    [
                        "Redis CPU (INFO cpu); top commands (commandstats)",
                        *(
                            f"{harness.fmt(e.get('store_us'), '.0f')} ({_cmds(e.get('redis_cmd_us', {}))})"
                            if e.get("store") == "redis"
                            else "-"
                            for _, e in cols
                        ),
                    ]
                )
            if any(e.get("store") == "postgres" for _, e in cols):
                body.append(
                    [
                        "PostgreSQL backends' CPU (/proc)",
                        *(
                            harness.fmt(e.get("store_us"), ".0f") if e.get("store") == "postgres" else "-"
                            for _, e in cols
                        ),
                    ]
                )
            body.append(
                [
                    "py-spy samples (seen / CPU time x rate)",
                    *(
                        f"{e['samples']} ({harness.fmt(e.get('coverage'), '.2f')})"
                        if "samples" in e
                        else "failed"
                        for _, e in cols
                    ),
                ]
            )
            body.append(
                [
                    "waited for a core (schedstat; sampled as if running)",
                    *(harness.fmt(e.get("wait_us"), ".0f") for _, e in cols),
                ]
            )
            body.append(["req/s under py-spy", *(harness.fmt(e["rps"], ".0f") for _, e in cols)])
            parts.append(harness.render(head, body, markdown))
    return "\n\n".join(parts)


def _us(e: dict[str, Any], category: str) -> str:
    if "us" not in e:
        return "-"
    share = e["shares"][category]
    return "-" if share == 0 else f"{e['us'][category]:.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--only", action="append", default=[], help="variants whose name contains this (repeatable)"
    )
    p.add_argument("--workload", choices=["read", "write", "both"], default="both")
    p.add_argument("--duration", type=int, default=10, help="seconds of wrk per profiled run (default 10)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    p.add_argument("--merge", action="store_true", help="put the result into bench/results/latest.json too")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--classify", metavar="FILE", help="only classify a saved py-spy raw profile")
    p.add_argument("--cpu-us", type=float, default=0.0, help="with --classify: CPU µs per request")
    p.add_argument("--top", type=int, default=5, help="with --classify: deciding frames shown per category")
    args = p.parse_args()
    if args.classify:
        per, frames = read_profile(Path(args.classify))
        res = shares_to_us(per, args.cpu_us)
        harness.log(f"{res['samples']} samples; per category its share, µs and the frames that decided it")
        for c in CATEGORIES:
            harness.log(f"{res['shares'][c] * 100:5.1f}%  {res['us'][c]:7.1f} µs  {c}")
            for frame, n in frames[c].most_common(args.top):
                harness.log(f"         {n:6d}  {frame[:130]}")
        return

    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    harness.ensure_venv(False)
    redis = harness.Redis()
    try:
        pg_url, _ = harness.pg_prepare()
        variants = harness.all_variants()
        harness.check_stores(variants, redis, pg_url)
        if args.only:
            variants = [v for v in variants if any(o in v.name for o in args.only)]
        urls = {
            v.name: {
                "BENCH_REDIS": redis.url(),
                **(
                    {"BENCH_STORE": harness.store_url(v.store, v.framework, redis, pg_url)} if v.store else {}
                ),
            }
            for v in variants
        }
        workloads = ("read", "write") if args.workload == "both" else (args.workload,)
        bd: dict[str, dict[str, Any]] = {}
        for v in [v for v in variants if v.available and harness.store_of(v) is not None]:
            for workload in workloads:
                e = measure(
                    v, urls[v.name], redis, workload, args.duration, args.threads, args.connections, args.rate
                )
                bd.setdefault(v.name, {})[workload] = e
                harness.log(f"  {v.name} {workload}: {e['cpu_us']:.0f} µs/req, {e.get('samples', 0)} samples")
    finally:
        redis.close()
    (harness.RESULTS / "breakdown.json").write_text(json.dumps(bd, indent=1))
    harness.log("\n" + breakdown_tables(bd, markdown=args.markdown))
    if args.merge:
        latest = harness.RESULTS / "latest.json"
        res = json.loads(latest.read_text()) if latest.exists() else {}
        res["breakdown"] = {**res.get("breakdown", {}), **bd}
        latest.write_text(json.dumps(res, indent=1, default=str))
        harness.log(f"merged into {latest.relative_to(harness.REPO)}")


if __name__ == "__main__":
    main()
