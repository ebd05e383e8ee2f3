#!/usr/bin/env python3
"""sessionkeeper against its peers, on the same servers and the same store, in one command.

    python3 bench/run.py --quick          # a few minutes: 2 rounds of short wrk runs
    python3 bench/run.py                  # full: more rounds, longer runs
    python3 bench/run.py --docs           # also rewrite docs/performance.md and its plot
    python3 bench/run.py --only redis     # variants whose name contains "redis"
    python3 bench/run.py --profile starlette/sk-redis   # py-spy flame data for one variant
    python3 bench/run.py --only redis --breakdown     # + CPU per request by category (py-spy)
    python3 bench/run.py --strict                     # refuse a busy machine, fail on noisy rows

What it does (stdlib only; the apps and peers run in bench/.venv, which it creates):
1. creates or updates bench/.venv: sessionkeeper (editable, with extras) and the peers;
2. starts its own redis-server on a free loopback port (its INFO commandstats then count only
   the bench), and a dedicated PostgreSQL database ``skbench`` on 127.0.0.1:5432;
3. checks which sessionkeeper stores exist (a store module that is missing or fails a
   create-and-load is reported "not available yet");
4. load: each variant's server pinned to core 0 (gunicorn, 1 sync worker / uvicorn, 1 worker),
   wrk (``--threads`` 2, ``--connections`` 8) pinned to core 1; variants alternate in rounds
   (rotated order), ratios are computed within each round, then the median is taken. Around
   every wrk run the harness reads the CPU time of the server's process tree (utime + stime
   from /proc/<pid>/stat, the gunicorn worker included), of the bench's redis-server (``INFO
   cpu``; ``INFO commandstats`` for the time per command) and of the PostgreSQL backends
   serving the bench database (found by their process titles in /proc), and divides by the
   requests served: CPU µs per request, far steadier than req/s on a shared machine. The
   load average is printed at the start and end of every round; rows whose req/s spread over
   rounds exceeds ``--max-spread`` are flagged (``--strict``: exit 1 on a flagged row, and
   refuse to start when the 1-minute load average is above ``--max-load``);
5. counts: each store-backed variant again, behind a counting TCP proxy, with sequential
   requests: store round trips (and Redis commands / PostgreSQL statements) per request for
   untouched, read, write and new-session requests;
6. lost updates: N concurrent requests on one session each add their own cart item (naive
   whole-cart write of one dict, append to one list, and one key per item); counts what
   survives;
7. with ``--breakdown``, each store-backed variant again under load with py-spy attached
   (``bench/breakdown.py``): the server's CPU per request split by where it goes (library,
   store plan, Redis client, timeouts, event loop and sockets, framework and server);
8. prints the tables, saves bench/results/latest.json and, with --docs, docs/performance.md
   and docs/performance.png.

The wrk workload (``bench/session.lua``): wrk's ``request()`` and ``response()`` run per wrk
thread and cannot tell its connections apart, so each thread is one browser with one cookie
(one session) and ``--connections / --threads`` connections (4 by default) sending its
requests concurrently, like a browser's parallel requests. Every variant gets exactly the
same: the same paths, the same cookie handling, the same concurrency per session. Concurrent
requests on one session are fair to all: no library here locks or retries (a read is a read;
a write sets one counter key in every library, last writer wins for its value, and the write
path runs in full whatever the interleaving), and a gunicorn sync worker serves them one at a
time anyway. Until a thread's first answer arrives, each of its connections sends the warm-up
``/write`` without a cookie, so a run creates up to ``connections`` sessions (the thread keeps
the last cookie it is given); that is a handful of requests among thousands.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy import CountingProxy, Counts

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VPY = VENV / "bin" / "python"
RESULTS = BENCH / "results"
APPS = BENCH / "apps"
LUA = BENCH / "session.lua"

PEER_PACKAGES = [
    "Flask-Session",
    "starsessions",
    "Django",
    "gunicorn",
    "uvicorn",
    "uvloop",
    "httptools",
    "redis",
    "psycopg[binary]",
    "psycopg-pool",
    "itsdangerous",
    "matplotlib",
    "py-spy",
    # other Redis clients, measured per round trip by bench/micro.py --wire (not used by the apps)
    "coredis",
    "valkey-glide",
    "valkey-glide-sync",
]
VERSIONS_OF = [
    "sessionkeeper",
    "Flask",
    "Flask-Session",
    "starlette",
    "starsessions",
    "Django",
    "gunicorn",
    "uvicorn",
    "uvloop",
    "httptools",
    "redis",
    "hiredis",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "msgspec",
    "itsdangerous",
    "matplotlib",
]

SRC_OVERRIDE = ""  # set by --src
SERVER_CORE = "0"
WRK_CORE = "1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "skbench"

# Goals: (variant, peer, workload, minimum req/s ratio to the peer); shown as "goal" columns
PEER_TARGETS = [
    ("starlette/sk-redis", "starlette/starsessions-redis", "read", 2.0),
    ("starlette/sk-redis", "starlette/starsessions-redis", "write", 1.3),
    ("flask/sk-redis", "flask/flask-session-redis", "read", 1.6),
    ("flask/sk-redis", "flask/flask-session-redis", "write", 1.3),
]
ROUND_TRIP_TARGETS = {"untouched": 0, "read": 1, "write": 2}


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- variants ---------------------------------------------------------------------------


@dataclass
class Variant:
    name: str  # "flask/sk-redis"
    framework: str  # flask | starlette | django
    session: str  # BENCH_SESSION for the app
    store: str | None = None  # sessionkeeper store: memory | sqlite | file | redis | postgres
    uses_redis: bool = False  # a peer that keeps sessions in Redis
    baseline: str = ""  # the framework's no-session variant
    peer: str | None = None  # the named peer for sessionkeeper variants
    available: bool = True
    why_not: str = ""

    @property
    def networked(self) -> bool:
        return self.uses_redis or self.store in ("redis", "postgres")


def all_variants() -> list[Variant]:
    out: list[Variant] = []
    for fw, peer_name, peer_session, app_peer in (
        ("flask", "flask-session-redis", "flask-session", "flask/flask-session-redis"),
        ("starlette", "starsessions-redis", "starsessions", "starlette/starsessions-redis"),
    ):
        base = f"{fw}/none"
        out.append(Variant(base, fw, "none", baseline=base))
        for store in ("memory", "sqlite", "file", "redis", "postgres"):
            out.append(Variant(f"{fw}/sk-{store}", fw, "sk", store=store, baseline=base, peer=app_peer))
        out.append(Variant(f"{fw}/{peer_name}", fw, peer_session, uses_redis=True, baseline=base))
        out.append(Variant(f"{fw}/signed-cookie", fw, "signed", baseline=base))
    out.append(Variant("django/none", "django", "none", baseline="django/none"))
    out.append(
        Variant("django/cache-redis", "django", "django-cache", uses_redis=True, baseline="django/none")
    )
    return out


# ---- environment ------------------------------------------------------------------------


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def ensure_venv(upgrade: bool) -> None:
    """Create or update bench/.venv; skipped when the requirement list and pyproject match."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    stamp_text = hashlib.sha256(pyproject + "\n".join(PEER_PACKAGES).encode()).hexdigest()
    stamp = VENV / ".bench-stamp"
    if VPY.exists() and stamp.exists() and stamp.read_text() == stamp_text and not upgrade:
        return
    log(f"setting up {VENV.relative_to(REPO)} (sessionkeeper editable + peers) ...")
    if not VPY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VPY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if upgrade:
        pip.append("--upgrade")
    res = run([*pip, "-e", f"{REPO}[flask,starlette,redis,postgres]", *PEER_PACKAGES])
    if res.returncode != 0:
        sys.exit(f"pip install failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    stamp.write_text(stamp_text)


def venv_versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for n in {VERSIONS_OF!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(run([str(VPY), "-c", code], check=True).stdout)


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = (run(["wrk", "--version"]).stdout.splitlines() if shutil.which("wrk") else []) or ["?"]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "wrk": wrk[0].split(" Copyright")[0],
        "loadavg_start": os.getloadavg()[0],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a process this harness started (its own session/process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Redis:
    """The bench's own redis-server on a free loopback port (falls back to :6379 db 15)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 6379
        self.db = 15
        self.own = False
        self.version = "?"
        if shutil.which("redis-server"):
            port = free_port()
            self.proc = subprocess.Popen(
                [
                    "taskset",  # off the app server's core, as a Redis on its own machine would be
                    "-c",
                    WRK_CORE,
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if wait_port(port, 10, self.proc):
                self.port, self.db, self.own = port, 0, True
            else:
                stop_process(self.proc)
                self.proc = None
        info = self.command("INFO", "server")
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                self.version = line.split(":", 1)[1].strip()

    def url(self, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.port}/{self.db}"

    def command(self, *args: str) -> str:
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(payload.encode())
            f = s.makefile("rb")
            head = f.readline().decode().strip()
            if head.startswith("$"):
                return f.read(int(head[1:]) + 2)[:-2].decode()
            return head

    def commandstats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                calls = dict(kv.split("=", 1) for kv in rest.split(","))
                out[name[len("cmdstat_") :]] = int(calls["calls"])
        return out

    def command_usec(self) -> dict[str, int]:
        """Microseconds spent per command so far (``INFO commandstats``; a script's commands
        are counted on their own and again inside the script's ``evalsha``)."""
        out: dict[str, int] = {}
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                stats = dict(kv.split("=", 1) for kv in rest.split(","))
                out[name[len("cmdstat_") :]] = int(stats["usec"])
        return out

    def cpu_seconds(self) -> float:
        """The server's user + system CPU so far (``INFO cpu``: getrusage, µs resolution)."""
        fields = dict(line.split(":", 1) for line in self.command("INFO", "cpu").splitlines() if ":" in line)
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# ---- CPU per request --------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")
# a backend's process title: "postgres: 15/main: user db 127.0.0.1(41234) idle"
PG_TITLE = re.compile(r"^postgres: (?:\S+: )?\S+ (?P<db>\S+) (?:\S+\(\d+\)|\[local\])")


def proc_cpu() -> dict[int, tuple[int, float, float]]:
    """Every process: pid -> (parent pid, user + system CPU seconds, system CPU seconds), from
    /proc/<pid>/stat (in clock ticks: 10 ms; a run's thousands of requests make that fine)."""
    out: dict[int, tuple[int, float, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        rest = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        utime, stime = int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK
        out[int(entry.name)] = (int(rest[1]), utime + stime, stime)
    return out


def tree_cpu(root: int, table: dict[int, tuple[int, float, float]]) -> tuple[float, float]:
    """(CPU seconds, of which system) of ``root`` and its descendants (gunicorn's master and
    its worker)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, system, todo = 0.0, 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total, system = total + table[pid][1], system + table[pid][2]
        todo += children.get(pid, [])
    return total, system


def pg_backends(db: str, table: dict[int, tuple[int, float, float]]) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to ``db`` (by process title)."""
    out: dict[int, float] = {}
    for pid, (_, cpu, _) in table.items():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        m = PG_TITLE.match(title)
        if m and m["db"] == db:
            out[pid] = cpu
    return out


@dataclass
class CpuProbe:
    """Reads the CPU a variant's server and its store have used; ``per_request`` turns two
    readings into µs per request."""

    server_pid: int
    redis: Redis | None = None  # the bench's own redis-server, for Redis-backed variants
    pg_db: str | None = None  # the bench database, for PostgreSQL-backed variants

    def read(self) -> dict[str, Any]:
        table = proc_cpu()
        server, system = tree_cpu(self.server_pid, table)
        out: dict[str, Any] = {"server": server, "server_sys": system}
        if self.redis is not None:
            out["redis"] = self.redis.cpu_seconds()
            out["redis_usec"] = self.redis.command_usec()
        if self.pg_db is not None:
            out["pg"] = pg_backends(self.pg_db, table)
        return out

    @staticmethod
    def per_request(before: dict[str, Any], after: dict[str, Any], requests: int) -> dict[str, Any]:
        n = max(requests, 1)
        out: dict[str, Any] = {
            "cpu_us": (after["server"] - before["server"]) / n * 1e6,
            "sys_us": (after["server_sys"] - before["server_sys"]) / n * 1e6,  # the kernel's part
        }
        if "redis" in after:
            out["store_us"] = (after["redis"] - before["redis"]) / n * 1e6
            usec = {
                k: (v - before["redis_usec"].get(k, 0)) / n
                for k, v in after["redis_usec"].items()
                if k != "info" and v != before["redis_usec"].get(k, 0)
            }
            out["redis_cmd_us"] = {k: round(v, 2) for k, v in sorted(usec.items())}
        if "pg" in after:  # a backend that ended meanwhile is missed; a new one counts in full
            pg = sum(cpu - before["pg"].get(pid, 0.0) for pid, cpu in after["pg"].items())
            out["store_us"] = pg / n * 1e6
        return out


def probe_for(v: Variant, pid: int, redis: Redis) -> CpuProbe:
    """The CPU probe for ``v``'s server: its store's CPU too, where the bench can attribute it."""
    uses_redis = v.uses_redis or v.store == "redis"
    return CpuProbe(
        pid,
        redis if uses_redis and redis.own else None,
        PG_DB if v.store == "postgres" else None,
    )


def pg_prepare() -> tuple[str | None, str]:
    """The bench database URL (created if missing) and the server version, or (None, why)."""
    code = (
        "import psycopg, sys\n"
        f"with psycopg.connect({PG_ADMIN_URL!r}, autocommit=True, connect_timeout=3) as c:\n"
        f"    if not c.execute('select 1 from pg_database where datname=%s', ({PG_DB!r},)).fetchone():\n"
        f"        c.execute('create database {PG_DB}')\n"
        "    print(c.execute('show server_version').fetchone()[0])\n"
    )
    res = run([str(VPY), "-c", code])
    if res.returncode != 0:
        return None, res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "unreachable"
    return f"postgresql://postgres@127.0.0.1:5432/{PG_DB}?create_schema=true", res.stdout.strip()


def store_url(
    store: str,
    fw: str,
    redis: Redis,
    pg_url: str | None,
    redis_port: int | None = None,
    pg_port: int | None = None,
) -> str:
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return f"sqlite:///{RESULTS / f'{fw}-sk.db'}"
    if store == "file":
        return f"file://{RESULTS / f'{fw}-sk-files'}"
    if store == "redis":
        return redis.url(redis_port)
    assert pg_url is not None
    return pg_url if pg_port is None else pg_url.replace(":5432/", f":{pg_port}/")


PREFLIGHT = """
import asyncio, sys, time
from sessionkeeper import open_store, Record, Meta
from sessionkeeper.core.records import Create, Load, Delete
url = sys.argv[1]
store = open_store(url)
now = time.time()
meta = Meta(created_at=now, last_seen=now, expires_at=now + 60, absolute_at=now + 60)
key = "0" * 63 + "1"
store.execute(Delete(key))
assert store.execute(Create(key, Record({"a": "1"}, meta))) is True
assert store.execute(Load(key, now)).fields["a"] == "1"
async def main():
    assert (await store.aexecute(Load(key, now))).fields["a"] == "1"
    await store.aexecute(Delete(key))
    await store.aclose()
asyncio.run(main())
print("ok")
"""


def check_stores(variants: list[Variant], redis: Redis, pg_url: str | None) -> dict[str, str]:
    """Mark sessionkeeper variants whose store is missing or broken as not available."""
    status: dict[str, str] = {}
    for store in ("memory", "sqlite", "file", "redis", "postgres"):
        module = REPO / "src" / "sessionkeeper" / "stores" / f"{store}.py"
        if not module.exists():
            status[store] = f"not available yet (no src/sessionkeeper/stores/{store}.py)"
            continue
        if store == "postgres" and pg_url is None:
            status[store] = "PostgreSQL unreachable"
            continue
        url = store_url(store, "preflight", redis, pg_url)
        res = run([str(VPY), "-c", PREFLIGHT, url], timeout=60, cwd=RESULTS)
        if res.returncode != 0 or res.stdout.strip() != "ok":
            last = (res.stderr.strip().splitlines() or ["failed"])[-1]
            status[store] = f"not available yet (preflight: {last[:160]})"
        else:
            status[store] = "ok"
    for v in variants:
        if v.store is not None and status[v.store] != "ok":
            v.available, v.why_not = False, status[v.store]
    return status


# ---- servers ----------------------------------------------------------------------------


@dataclass
class Server:
    variant: Variant
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path


def start_server(v: Variant, env_urls: dict[str, str], mode: str = "load", pin: bool = True) -> Server:
    """Start ``v``'s app on a free port: gunicorn 1 sync worker (load) or gthread (lost)."""
    port = free_port()
    env = {**os.environ, "BENCH_SESSION": v.session, **env_urls, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    if SRC_OVERRIDE:  # --src: run the apps against another copy of sessionkeeper's src/
        env["PYTHONPATH"] = SRC_OVERRIDE
    bind = f"127.0.0.1:{port}"
    if v.framework == "starlette":
        cmd = [
            str(VENV / "bin" / "uvicorn"),
            "--app-dir",
            str(APPS),
            "starlette_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ]
    else:
        module = "flask_app:app" if v.framework == "flask" else "django_app:app"
        worker = ["-k", "sync"] if mode == "load" else ["-k", "gthread", "--threads", "64"]
        cmd = [
            str(VENV / "bin" / "gunicorn"),
            "--pythonpath",
            str(APPS),
            "-w",
            "1",
            *worker,
            "-b",
            bind,
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            module,
        ]
    if pin:
        cmd = ["taskset", "-c", SERVER_CORE, *cmd]
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{v.name.replace('/', '_')}-{mode}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=RESULTS, start_new_session=True
        )
    server = Server(v, port, proc, log_path)
    if not wait_port(port, 30, proc) or http_get(port, "/plain")[0] != 200:
        stop_process(proc)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{v.name} did not start: {' | '.join(tail)[:300]}")
    return server


def http_get(
    port: int, path: str, cookie: str | None = None, timeout: float = 10
) -> tuple[int, str | None, str]:
    """(status, the cookie pair from Set-Cookie or None, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        set_cookie = resp.getheader("Set-Cookie")
        pair = None if not set_cookie else set_cookie.split(";", 1)[0]
        if pair is not None and ("Max-Age=0" in set_cookie or pair.endswith(("=", '=""'))):
            pair = ""
        return resp.status, pair, body
    except OSError:
        return 0, None, ""
    finally:
        conn.close()


class Client:
    """A browser-like sequential client: keeps the last cookie it was given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie: str | None = None

    def get(self, path: str) -> tuple[int, str]:
        status, pair, body = http_get(self.port, path, self.cookie)
        if pair is not None:
            self.cookie = pair or None
        return status, body


# ---- load (wrk) -------------------------------------------------------------------------


def wrk(port: int, path: str, duration: float, threads: int, connections: int) -> dict[str, Any]:
    """One wrk run; each wrk thread is one browser (one session), see the module docstring."""
    cmd = [
        "taskset",
        "-c",
        WRK_CORE,
        "wrk",
        f"-t{threads}",  # few threads: wrk shares its core with the bench's Redis
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}/",
        "--",
        path,
        "/write",
    ]
    res = run(cmd, timeout=duration + 60)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk failed: {res.stdout[-500:]} {res.stderr[-500:]}")
    out = json.loads(lines[-1])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    out["errors"] = out["connect"] + out["read"] + out["write"] + out["status"] + out["timeout"]
    return out


def load_phase(
    variants: list[Variant],
    urls: dict[str, dict[str, str]],
    redis: Redis,
    rounds: int,
    duration: int,
    threads: int,
    connections: int,
    warmup_paths: tuple[str, ...],
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[dict[str, Any]]]:
    """wrk runs of every variant in rounds, each with the CPU it cost; also each round's load."""
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    round_info: list[dict[str, Any]] = []
    servers: dict[str, Server] = {}
    try:
        for v in variants:
            try:
                servers[v.name] = start_server(v, urls[v.name])
            except RuntimeError as exc:
                v.available, v.why_not = False, str(exc)
                log(f"  ! {exc}")
        live = [v for v in variants if v.name in servers]
        for v in live:  # warm up: code paths, pools, the sessions the wrk threads create
            for path in warmup_paths:
                wrk(servers[v.name].port, path, 1, threads, connections)
        probes = {v.name: probe_for(v, servers[v.name].proc.pid, redis) for v in live}
        for r in range(rounds):
            order = live[r % len(live) :] + live[: r % len(live)] if live else []
            t0, load0 = time.monotonic(), os.getloadavg()[0]
            log(f"  round {r + 1}/{rounds}: load average {load0:.2f} at the start")
            for v in order:
                for workload in ("read", "write"):
                    before = probes[v.name].read()
                    s = wrk(servers[v.name].port, f"/{workload}", duration, threads, connections)
                    s.update(CpuProbe.per_request(before, probes[v.name].read(), s["requests"]))
                    samples.setdefault(v.name, {}).setdefault(workload, []).append(s)
            load1, took = os.getloadavg()[0], time.monotonic() - t0
            round_info.append(
                {"round": r + 1, "load_start": load0, "load_end": load1, "seconds": round(took)}
            )
            log(f"  round {r + 1}/{rounds} done in {took:.0f} s: load average {load0:.2f} -> {load1:.2f}")
    finally:
        for s in servers.values():
            stop_process(s.proc)
    return samples, round_info


# ---- store round trips (counting proxy) -------------------------------------------------


def count_phase(
    variants: list[Variant], redis: Redis, pg_url: str | None, n: int
) -> dict[str, dict[str, Any]]:
    """Round trips per request through a counting proxy, sequential requests, one client."""
    out: dict[str, dict[str, Any]] = {}
    rproxy = CountingProxy(redis.port)
    pproxy = CountingProxy(5432, postgres=True) if pg_url else None
    try:
        for v in variants:
            if not (v.available and v.networked):
                continue
            is_pg = v.store == "postgres"
            proxy = pproxy if is_pg else rproxy
            assert proxy is not None
            env = {"BENCH_REDIS": redis.url(rproxy.port)}
            if v.store is not None:
                env["BENCH_STORE"] = store_url(
                    v.store, v.framework, redis, pg_url, rproxy.port, pproxy.port if pproxy else None
                )
            try:
                server = start_server(v, env, mode="count", pin=False)
            except RuntimeError as exc:
                log(f"  ! {exc}")
                continue
            try:
                out[v.name] = count_one(server.port, proxy, redis if not is_pg else None, n)
            finally:
                stop_process(server.proc)
    finally:
        rproxy.close()
        if pproxy:
            pproxy.close()
    return out


def count_one(port: int, proxy: CountingProxy, redis: Redis | None, n: int) -> dict[str, Any]:
    client = Client(port)
    client.get("/write")  # create the session
    for path in ("/plain", "/read", "/write") * 8:  # warm the pools (psycopg prepares after 5 uses)
        client.get(path)
    result: dict[str, Any] = {}
    phases = [
        ("untouched", "/plain", True),
        ("read", "/read", True),
        ("write", "/write", True),
        ("new", "/write", False),
    ]
    for phase, path, with_cookie in phases:
        before, cmds_before = proxy.snapshot(), redis.commandstats() if redis else {}
        statuses = set()
        for _ in range(n):
            if with_cookie:
                statuses.add(client.get(path)[0])
            else:
                statuses.add(http_get(port, path)[0])
        delta: Counts = proxy.snapshot().minus(before)
        entry: dict[str, Any] = {
            "round_trips": delta.round_trips / n,
            "new_connections": delta.connections / n,
            "statuses": sorted(statuses),
        }
        if redis is not None:
            after = redis.commandstats()
            cmds = {
                k: (v - cmds_before.get(k, 0)) / n for k, v in after.items() if v != cmds_before.get(k, 0)
            }
            cmds.pop("info", None)
            entry["commands"] = round(sum(cmds.values()), 2)
            entry["command_mix"] = {k: round(v, 2) for k, v in sorted(cmds.items())}
        else:
            entry["statements"] = delta.statements / n
            entry["command_mix"] = {k: round(v / n, 2) for k, v in sorted(delta.messages.items())}
        result[phase] = entry
    return result


# ---- lost updates -----------------------------------------------------------------------


def lost_phase(
    variants: list[Variant], urls: dict[str, dict[str, str]], n: int, delay_ms: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in variants:
        if not v.available or v.session == "none":
            continue
        try:
            server = start_server(v, urls[v.name], mode="lost", pin=False)
        except RuntimeError as exc:
            log(f"  ! {exc}")
            continue
        try:
            kinds = ("naive", "list", "key")
            out[v.name] = {kind: lost_one(server.port, kind, n, delay_ms) for kind in kinds}
        finally:
            stop_process(server.proc)
    return out


def lost_one(port: int, kind: str, n: int, delay_ms: int) -> dict[str, Any]:
    client = Client(port)
    client.get("/write")  # a session exists before the burst
    start = threading.Barrier(n)
    done: list[tuple[float, int, str | None]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        start.wait()
        status, pair, _ = http_get(
            port, f"/cart/{kind}?item=i{i}&delay={delay_ms}", client.cookie, timeout=30
        )
        with lock:
            done.append((time.monotonic(), status, pair))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = sum(1 for _, status, _ in done if status != 200)
    for _, _, pair in sorted(done):  # the browser keeps the cookie it received last
        if pair is not None:
            client.cookie = pair or None
    status, body = client.get("/cart/count")
    counted = json.loads(body) if status == 200 else {}
    survived = counted.get({"naive": "naive", "list": "list"}.get(kind, "per_key"), 0)
    return {"sent": n, "survived": survived, "errors": errors}


# ---- summary ----------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Row:
    variant: str
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    spread: float  # (max - min) / median of req/s over rounds
    x_base: float | None
    x_peer: float | None
    added_us: float | None  # per-request cost over the framework's baseline
    errors: int
    note: str = ""
    rounds: list[float] = field(default_factory=list)
    # CPU per request (medians over rounds); None where not measured (results before issue 14)
    cpu_us: float | None = None  # the app server's process tree, from /proc
    cpu_spread: float | None = None  # (max - min) / median of cpu_us over rounds
    x_peer_cpu: float | None = None  # the peer's server CPU / ours: > 1 means we use less
    store: str | None = None  # "redis" | "postgres": whose CPU store_us is
    store_us: float | None = None  # Redis (INFO cpu) or the PostgreSQL backends (/proc)
    x_peer_cpu_total: float | None = None  # the same ratio for server + store CPU
    redis_cmd_us: dict[str, float] = field(default_factory=dict)  # INFO commandstats, per request
    goal: str = ""  # the x peer this row aims for, e.g. "≥ 1.3"
    flagged: bool = False  # spread above --max-spread: too noisy to trust


def store_of(v: Variant) -> str | None:
    if v.uses_redis or v.store == "redis":
        return "redis"
    return "postgres" if v.store == "postgres" else None


def summarize(
    variants: list[Variant],
    samples: dict[str, dict[str, list[dict[str, Any]]]],
    max_spread: float = float("inf"),
) -> list[Row]:
    rows: list[Row] = []
    by_name = {v.name: v for v in variants}
    goals = {(t[0], t[2]): f"≥ {t[3]:.1f}" for t in PEER_TARGETS}
    for v in variants:
        for workload in ("read", "write"):
            ss = samples.get(v.name, {}).get(workload, [])
            if not ss:
                rows.append(
                    Row(
                        v.name,
                        workload,
                        float("nan"),
                        float("nan"),
                        float("nan"),
                        float("nan"),
                        None,
                        None,
                        None,
                        0,
                        v.why_not or "not run",
                    )
                )
                continue
            rps = [s["rps"] for s in ss]

            def ratio(other: str | None, rps: list[float] = rps, workload: str = workload) -> float | None:
                o = samples.get(other or "", {}).get(workload, [])
                if not o or other is None or not by_name[other].available:
                    return None
                return med([a / b["rps"] for a, b in zip(rps, o, strict=False)])

            def cpu_ratio(
                total: bool,
                ss: list[dict[str, Any]] = ss,
                workload: str = workload,
                peer: str | None = v.peer,
            ) -> float | None:
                """The peer's CPU per request over ours, within each round, median."""
                o = samples.get(peer or "", {}).get(workload, [])
                if not o or peer is None or not by_name[peer].available or "cpu_us" not in o[0]:
                    return None

                def cost(sample: dict[str, Any]) -> float:
                    return float(sample["cpu_us"]) + (float(sample.get("store_us") or 0) if total else 0.0)

                return med([cost(b) / cost(a) for a, b in zip(ss, o, strict=False) if cost(a) > 0])

            base = samples.get(v.baseline, {}).get(workload, [])
            added = None
            if base and v.name != v.baseline:
                added = med([(1 / a - 1 / b["rps"]) * 1e6 for a, b in zip(rps, base, strict=False)])
            m = med(rps)
            cpu = [s["cpu_us"] for s in ss if "cpu_us" in s]
            store_us = [s["store_us"] for s in ss if "store_us" in s]
            cmd_names = sorted({k for s in ss for k in s.get("redis_cmd_us", {})})
            spread = (max(rps) - min(rps)) / m if m else float("nan")
            rows.append(
                Row(
                    v.name,
                    workload,
                    m,
                    med([s["p50_us"] for s in ss]) / 1000,
                    med([s["p99_us"] for s in ss]) / 1000,
                    spread,
                    ratio(v.baseline) if v.name != v.baseline else 1.0,
                    ratio(v.peer) if v.peer else None,
                    added,
                    sum(s["errors"] for s in ss),
                    rounds=[round(x) for x in rps],
                    cpu_us=med(cpu) if cpu else None,
                    cpu_spread=(max(cpu) - min(cpu)) / med(cpu) if cpu and med(cpu) else None,
                    x_peer_cpu=cpu_ratio(False) if cpu and v.peer else None,
                    store=store_of(v) if store_us else None,
                    store_us=med(store_us) if store_us else None,
                    x_peer_cpu_total=cpu_ratio(True) if store_us and v.peer else None,
                    redis_cmd_us={
                        k: round(med([s.get("redis_cmd_us", {}).get(k, 0.0) for s in ss]), 2)
                        for k in cmd_names
                    },
                    goal=goals.get((v.name, workload), ""),
                    flagged=spread > max_spread,
                )
            )
    return rows


def fmt(x: float | None, spec: str, dash: str = "-") -> str:
    if x is None or x != x:
        return dash
    return format(x, spec)


FLAG = "!"


def load_table(rows: list[Row], markdown: bool = False, max_spread: float | None = None) -> str:
    """req/s and CPU µs per request per variant; a footnote explains flagged (noisy) rows."""
    head = [
        "variant",
        "load",
        "req/s",
        "spread",
        "x peer",
        "goal",
        "CPU µs/req",
        "CPU spread",
        "x peer CPU",
        "store µs/req",
        "p50 ms",
        "p99 ms",
        "x base",
        "+µs/req",
        "errors",
    ]
    body = []
    for r in rows:
        if r.rps != r.rps:
            body.append([r.variant, r.workload, short(r.note) or "not run", *[""] * (len(head) - 3)])
            continue
        store = "" if r.store_us is None else f"{r.store_us:.0f} {'Redis' if r.store == 'redis' else 'PG'}"
        body.append(
            [
                r.variant,
                r.workload,
                fmt(r.rps, ".0f"),
                fmt(r.spread * 100, ".0f") + "%" + (FLAG if r.flagged else ""),
                fmt(r.x_peer, ".2f"),
                r.goal,
                fmt(r.cpu_us, ".0f"),
                "-" if r.cpu_spread is None else f"{r.cpu_spread * 100:.0f}%",
                fmt(r.x_peer_cpu, ".2f"),
                store,
                fmt(r.p50_ms, ".2f"),
                fmt(r.p99_ms, ".2f"),
                fmt(r.x_base, ".2f"),
                fmt(r.added_us, ".0f"),
                str(r.errors),
            ]
        )
    table = render(head, body, markdown)
    flagged = [r for r in rows if r.flagged]
    if flagged:
        limit = f" above {max_spread * 100:.0f}%" if max_spread is not None else ""
        table += (
            f"\n\n{FLAG} {len(flagged)} row(s) with a req/s spread over rounds{limit}: too noisy to "
            "compare their req/s; compare their CPU µs per request, or rerun on a quieter machine."
        )
    return table


def short(note: str) -> str:
    """A table-sized version of a why-not note (the full text is in the stores line and JSON)."""
    return note.split(" (", 1)[0] if note.startswith("not available yet") else note[:60]


def render(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    fmt_row = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt_row.format(*row) for row in [head, *body])


def counts_table(counts: dict[str, dict[str, Any]], markdown: bool = False) -> str:
    head = ["variant", "request", "round trips", "goal", "Redis cmds / PG stmts", "command mix (per request)"]
    body = []
    for name, phases in counts.items():
        ours = "/sk-redis" in name or "/sk-postgres" in name
        for phase, e in phases.items():
            n = e.get("commands", e.get("statements"))
            mix = ", ".join(f"{k} {v:g}" for k, v in e["command_mix"].items())
            goal = str(ROUND_TRIP_TARGETS[phase]) if ours and phase in ROUND_TRIP_TARGETS else ""
            body.append([name, phase, f"{e['round_trips']:.2f}", goal, fmt(n, ".2f"), mix])
    return render(head, body, markdown)


def lost_table(lost: dict[str, Any], markdown: bool = False) -> str:
    head = ["variant", "naive cart (one dict)", "list-append cart (one list)", "one key per item", "errors"]
    body = []
    for name, kinds in lost.items():
        nv, kv = kinds["naive"], kinds["key"]
        lv = kinds.get("list")  # results saved before the list-append cart have no such row
        body.append(
            [
                name,
                f"{nv['survived']}/{nv['sent']}",
                f"{lv['survived']}/{lv['sent']}" if lv else "-",
                f"{kv['survived']}/{kv['sent']}",
                str(nv["errors"] + kv["errors"] + (lv["errors"] if lv else 0)),
            ]
        )
    return render(head, body, markdown)


# Goal of the library's own work per request (the session's Python, the store client's Python
# and its timeouts: everything but the framework, the server and socket work), from the
# breakdown: at most this share of the peer's.
OWN_WORK_TARGETS = {"read": 0.5, "write": 1.0}


def targets(
    rows: list[Row],
    counts: dict[str, dict[str, Any]],
    variants: list[Variant],
    breakdowns: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, str]]:
    by = {(r.variant, r.workload): r for r in rows}
    avail = {v.name: v for v in variants}
    out = []
    for variant, peer, workload, need in PEER_TARGETS:
        r = by.get((variant, workload))
        target = f"{variant} ≥ {need}x {peer} ({workload})"
        if r is None or r.x_peer is None or variant not in avail or not avail[variant].available:
            why = avail[variant].why_not if variant in avail else "not selected"
            out.append({"target": target, "measured": "-", "verdict": "not measured: " + short(why)})
        else:
            cpu = "" if r.x_peer_cpu is None else f" (CPU {r.x_peer_cpu:.2f}x)"
            out.append(
                {
                    "target": target,
                    "measured": f"{r.x_peer:.2f}x{cpu}",
                    "verdict": "met" if r.x_peer >= need else f"missed by {(1 - r.x_peer / need) * 100:.0f}%",
                }
            )
    for variant, peer, workload, _ in PEER_TARGETS:
        ours = (breakdowns or {}).get(variant, {}).get(workload)
        theirs = (breakdowns or {}).get(peer, {}).get(workload)
        need = OWN_WORK_TARGETS[workload]
        target = f"{variant} own work ≤ {need:g}x {peer}'s ({workload}, breakdown)"
        if not ours or not theirs:
            out.append({"target": target, "measured": "-", "verdict": "not measured (--breakdown)"})
            continue
        a, b = ours["own_work_us"], theirs["own_work_us"]
        out.append(
            {
                "target": target,
                "measured": f"{a:.0f} µs vs {b:.0f} µs",
                "verdict": "met" if a <= need * b else f"missed by {a - need * b:.0f} µs/req",
            }
        )
    for fw in ("flask", "starlette"):
        for workload in ("read", "write"):
            sk, signed = by.get((f"{fw}/sk-memory", workload)), by.get((f"{fw}/signed-cookie", workload))
            target = f"{fw}/sk-memory added cost ≤ {fw}/signed-cookie's ({workload})"
            if not sk or not signed or sk.added_us is None or signed.added_us is None:
                out.append({"target": target, "measured": "-", "verdict": "not measured"})
                continue
            out.append(
                {
                    "target": target,
                    "measured": f"{sk.added_us:.0f} µs vs {signed.added_us:.0f} µs",
                    "verdict": "met"
                    if sk.added_us <= signed.added_us
                    else f"missed by {sk.added_us - signed.added_us:.0f} µs/req",
                }
            )
    for v in variants:
        if v.store not in ("redis", "postgres"):
            continue
        c = counts.get(v.name)
        for phase, need in ROUND_TRIP_TARGETS.items():
            target = f"{v.name}: {need} round trip(s) when {phase}"
            if c is None:
                out.append(
                    {"target": target, "measured": "-", "verdict": "not measured: " + short(v.why_not)}
                )
                continue
            got = c[phase]["round_trips"]
            out.append(
                {
                    "target": target,
                    "measured": f"{got:.2f}",
                    "verdict": "met" if got <= need + 0.01 else f"missed (+{got - need:.2f})",
                }
            )
    return out


def targets_table(ts: list[dict[str, str]], markdown: bool = False) -> str:
    return render(
        ["target", "measured", "verdict"], [[t["target"], t["measured"], t["verdict"]] for t in ts], markdown
    )


# ---- profile ----------------------------------------------------------------------------


def profile(
    v: Variant, env: dict[str, str], workload: str, duration: float, threads: int, connections: int
) -> None:
    server = start_server(v, env)
    try:
        wrk(server.port, f"/{workload}", 1, threads, connections)
        target = str(server.proc.pid)  # taskset execs the server: uvicorn itself, or gunicorn's master
        if v.framework != "starlette":  # profile gunicorn's worker, the master's child
            target = (run(["pgrep", "-P", target]).stdout.split() or [target])[0]
        out = RESULTS / f"profile-{v.name.replace('/', '_')}-{workload}.txt"
        spy = subprocess.Popen(
            [
                str(VENV / "bin" / "py-spy"),
                "record",
                "--pid",
                target,
                "--format",
                "raw",
                "--rate",
                "500",
                "--duration",
                str(int(duration) + 1),
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(1)
        result = wrk(server.port, f"/{workload}", duration, threads, connections)
        spy.wait(duration + 30)
        log(
            f"profiled {v.name} {workload}: {result['rps']:.0f} req/s under py-spy; collapsed stacks in {out}"
        )
        summarize_profile(out)
    finally:
        stop_process(server.proc)


def summarize_profile(path: Path, top: int = 25) -> None:
    """Print the functions with the most inclusive samples, from py-spy's collapsed stacks."""
    if not path.exists():
        log("  (py-spy wrote nothing: is ptrace allowed?)")
        return
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for frame in set(stack.split(";")):
            incl[frame] = incl.get(frame, 0) + int(n)
    for frame, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        log(f"  {n / total * 100:5.1f}%  {frame[:150]}")


# ---- main -------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs: about three minutes in all")
    p.add_argument("--rounds", type=int, help="rounds of all variants (default 2 quick, 4 full)")
    p.add_argument("--duration", type=int, help="whole seconds per wrk run (default 2 quick, 5 full)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="wrk threads (default 2), each one browser with one session; wrk shares its core with Redis",
    )
    p.add_argument(
        "--max-spread",
        type=float,
        default=0.25,
        help="flag rows whose req/s spread over rounds, (max - min) / median, exceeds this (default 0.25)",
    )
    p.add_argument(
        "--max-load",
        type=float,
        default=1.5,
        help="with --strict: the highest 1-minute load average to start from (default 1.5)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to start above --max-load; exit 1 (and leave the docs alone) if a row is flagged",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="also profile each store-backed variant with py-spy: CPU per request by category",
    )
    p.add_argument(
        "--breakdown-duration", type=int, help="seconds per profiled run (default 5 quick, 10 full)"
    )
    p.add_argument("--breakdown-rate", type=int, default=250, help="py-spy samples per second (default 250)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="only variants whose name contains this "
        "(repeatable; the baselines and named peers of the chosen variants are always added)",
    )
    p.add_argument("--lost-n", type=int, default=50, help="concurrent requests in the lost-update test")
    p.add_argument("--lost-delay", type=int, default=20, help="ms of app work between read and write")
    p.add_argument("--no-load", action="store_true", help="skip the wrk load phase")
    p.add_argument("--no-counts", action="store_true", help="skip the round-trip counts")
    p.add_argument("--no-lost", action="store_true", help="skip the lost-update test")
    p.add_argument("--docs", action="store_true", help="rewrite docs/performance.md and docs/performance.png")
    p.add_argument("--upgrade", action="store_true", help="pip install --upgrade the bench venv")
    p.add_argument("--profile", metavar="VARIANT", help="py-spy one variant under wrk, print its hot spots")
    p.add_argument("--profile-workload", default="read", choices=["read", "write"])
    p.add_argument(
        "--src",
        metavar="DIR",
        help="run the apps against a scratch copy of sessionkeeper's src/ (to A/B a change before making it)",
    )
    args = p.parse_args()
    load_at_start = os.getloadavg()[0]
    if args.threads < 1 or args.connections < args.threads:
        p.error("wrk needs --threads >= 1 and --connections >= --threads")
    if args.strict and load_at_start > args.max_load:
        sys.exit(
            f"--strict: the 1-minute load average is {load_at_start:.2f}, above --max-load "
            f"{args.max_load:g}; rerun on a quieter machine"
        )
    global SRC_OVERRIDE
    SRC_OVERRIDE = str(Path(args.src).resolve()) if args.src else ""
    rounds = args.rounds or (2 if args.quick else 4)
    duration = args.duration or (2 if args.quick else 5)
    warmup_paths = ("/read",) if args.quick else ("/read", "/write")
    count_n = 20 if args.quick else 100

    t_start = time.monotonic()
    for tool in ("wrk", "taskset") if not args.no_load else ():  # only the load phase needs them
        if not shutil.which(tool):
            package = "wrk" if tool == "wrk" else "util-linux"
            sys.exit(f"{tool} is not installed (Debian: apt-get install -y {package})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    ensure_venv(args.upgrade)
    versions = venv_versions()
    machine = machine_info()
    machine["loadavg_start"] = load_at_start  # before the venv check, which may pip install
    redis = Redis()
    try:
        pg_url, pg_version = pg_prepare()
        variants = all_variants()
        stores = check_stores(variants, redis, pg_url)
        for sqlite_file in RESULTS.glob("*-sk.db*"):
            sqlite_file.unlink()
        if args.only:
            chosen = {v.name for v in variants if any(o in v.name for o in args.only)}
            chosen |= {v.baseline for v in variants if v.name in chosen}
            chosen |= {v.peer for v in variants if v.name in chosen and v.peer}
            variants = [v for v in variants if v.name in chosen]
        urls = {
            v.name: {
                "BENCH_REDIS": redis.url(),
                **({"BENCH_STORE": store_url(v.store, v.framework, redis, pg_url)} if v.store else {}),
            }
            for v in variants
        }
        where_redis = f"own server :{redis.port}" if redis.own else "shared :6379 db 15"
        log(
            f"machine: {machine['nproc']} cores, {machine['cpu']}, load avg {machine['loadavg_start']:.2f}; "
            f"redis {redis.version} ({where_redis}), "
            f"PostgreSQL {pg_version}"
        )
        log("stores: " + ", ".join(f"{k}: {v}" for k, v in stores.items()))
        if args.profile:
            v = next((v for v in variants if v.name == args.profile), None)
            if v is None or not v.available:
                sys.exit(f"cannot profile {args.profile!r}: " + (v.why_not if v else "no such variant"))
            profile(v, urls[v.name], args.profile_workload, max(duration, 5), args.threads, args.connections)
            return
        runnable = [v for v in variants if v.available]
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
        round_info: list[dict[str, Any]] = []
        if not args.no_load:
            log(
                f"load: {len(runnable)} variants x read/write x {rounds} rounds x {duration:g} s, "
                f"wrk -t{args.threads} -c{args.connections} on core {WRK_CORE}, "
                f"servers on core {SERVER_CORE}"
            )
            samples, round_info = load_phase(
                runnable, urls, redis, rounds, duration, args.threads, args.connections, warmup_paths
            )
        rows = summarize(variants, samples, args.max_spread)
        breakdowns: dict[str, dict[str, Any]] = {}
        bd_duration = args.breakdown_duration or (5 if args.quick else 10)
        if args.breakdown:
            import breakdown  # here, not at the top: it imports this module

            breakdowns = breakdown.breakdown_phase(
                runnable, urls, redis, bd_duration, args.threads, args.connections, args.breakdown_rate
            )
        counts: dict[str, dict[str, Any]] = {}
        if not args.no_counts:
            log(f"counts: store round trips per request ({count_n} sequential requests per kind)")
            counts = count_phase(variants, redis, pg_url, count_n)
        lost: dict[str, Any] = {}
        if not args.no_lost:
            log(f"lost updates: {args.lost_n} concurrent requests on one session, {args.lost_delay} ms work")
            lost = lost_phase(variants, urls, args.lost_n, args.lost_delay)
    finally:
        redis.close()

    machine["loadavg_end"] = os.getloadavg()[0]
    elapsed = time.monotonic() - t_start
    ts = targets(rows, counts, variants, breakdowns)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "settings": {
            "rounds": rounds,
            "duration_s": duration,
            "threads": args.threads,
            "connections": args.connections,
            "max_spread": args.max_spread,
            "max_load": args.max_load,
            "strict": args.strict,
            "breakdown_duration_s": bd_duration if args.breakdown else None,
            "breakdown_rate": args.breakdown_rate if args.breakdown else None,
            "lost_n": args.lost_n,
            "lost_delay_ms": args.lost_delay,
            "count_n": count_n,
        },
        "machine": machine,
        "versions": versions,
        "redis": redis.version,
        "postgresql": pg_version,
        "stores": stores,
        "rounds": round_info,
        "rows": [asdict(r) for r in rows],
        "breakdown": breakdowns,
        "counts": counts,
        "lost": lost,
        "targets": ts,
        "elapsed_s": round(elapsed),
        "variants": [asdict(v) for v in variants],
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"run-{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=1, default=str))

    if samples:
        log("\n" + load_table(rows, max_spread=args.max_spread))
    if breakdowns:
        import breakdown

        log("\nWhere the server's CPU goes, µs per request (py-spy shares x CPU from /proc):\n")
        log(breakdown.breakdown_tables(breakdowns))
    if counts:
        log("\nStore round trips per request (counting proxy, sequential requests):\n" + counts_table(counts))
    if lost:
        log(f"\nLost updates ({args.lost_n} concurrent requests, what survives):\n" + lost_table(lost))
    log("\nGoals:\n" + targets_table(ts))
    log(
        f"\nload avg {machine['loadavg_start']:.2f} -> {machine['loadavg_end']:.2f}; results in "
        f"{(RESULTS / 'latest.json').relative_to(REPO)}; total runtime {elapsed:.0f} s"
    )
    flagged = [f"{r.variant} {r.workload}" for r in rows if r.flagged]
    if args.strict and flagged:
        sys.exit(
            f"--strict: {len(flagged)} row(s) spread more than {args.max_spread * 100:.0f}% over rounds "
            f"({', '.join(flagged)}); docs left alone"
        )
    if args.docs:
        subprocess.run([str(VPY), str(BENCH / "report.py"), str(RESULTS / "latest.json")], check=True)


if __name__ == "__main__":
    main()
