"""Throwaway redis-server processes for tests: standalone, a 3-master Cluster, a Sentinel.

Every process listens on a free loopback port, keeps its files in a temporary directory, and
is stopped by ``stop()`` (and, as a last resort, at interpreter exit and when the test
process dies: Linux PDEATHSIG). Nothing here touches the shared server on 6379.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import redis.retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from tests.conftest import free_port

START_TIMEOUT = 20.0  # seconds a process may take to answer PING / form a cluster


def have_redis_server() -> bool:
    return shutil.which("redis-server") is not None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If pytest is killed, its redis-servers go too instead of lingering on the machine.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait(what: str, check: object, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s (last error: {last!r})")


class RedisServer:
    """One redis-server. ``persistent=True`` keeps an append-only file (fsync always), so a
    ``kill()`` then ``start()`` on the same port comes back with the same data."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None, persistent: bool = False,
                 sentinel: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.persistent = persistent
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None
        # the server's requirepass, if any: start() needs it to see the server answer
        self.password = extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **{"socket_timeout": 5, **kw})  # type: ignore[arg-type]

    def start(self) -> RedisServer:
        """Start (or start again, same port and files) and wait until it answers PING.

        The process is tied to the calling *thread* (PR_SET_PDEATHSIG): call this from a thread
        that outlives the server (not a short-lived worker such as ``asyncio.to_thread``'s)."""
        if self.sentinel:
            conf = self.dir / "sentinel.conf"
            conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n" + "".join(
                line + "\n" for line in self.extra))
            args = ["redis-server", str(conf), "--sentinel"]
        else:
            persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                           else ["--appendonly", "no"])
            args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                    "--save", "", *persistence, "--daemonize", "no", *self.extra]
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        log.close()
        # short and never retried: each look is bounded, so a server that died is seen at once
        probe = self.client(socket_connect_timeout=1, socket_timeout=1, password=self.password,
                            retry=redis.retry.Retry(NoBackoff(), 0))

        def up() -> bool:
            proc = self.proc
            if proc is not None and proc.poll() is not None:  # e.g. its port was taken meanwhile
                tail = (self.dir / "server.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"redis-server on port {self.port} exited ({proc.returncode}): {tail}")
            return bool(probe.ping())

        try:
            _wait(f"redis-server on port {self.port}", up)
        except BaseException:
            self.kill()
            raise
        finally:
            probe.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the abrupt failure (no save, connections reset)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server hangs, sockets stay open (clients time out)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class Cluster:
    """Three masters, no replicas, slots split evenly; formed with ADDSLOTSRANGE + MEET."""

    def __init__(self, workdir: Path, masters: int = 3, persistent: bool = False) -> None:
        self.bus_ports = [free_port() for _ in range(masters)]  # explicit: port + 10000 may be taken
        # persistent: each node keeps an append-only file, so a node killed and started again
        # (same port, same nodes.conf) rejoins with its data (bench/soak.py's restarts).
        self.servers = [
            RedisServer(workdir / f"node{i}", "--cluster-enabled", "yes", "--cluster-config-file",
                        "nodes.conf", "--cluster-node-timeout", "5000", "--cluster-port", str(bus),
                        persistent=persistent)
            for i, bus in enumerate(self.bus_ports)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> Cluster:
        try:
            for s in self.servers:
                s.start()
            n = len(self.servers)
            bounds = [16384 * i // n for i in range(n + 1)]
            first = self.servers[0].client()
            for i, s in enumerate(self.servers):
                c = s.client()
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
                c.close()
                if i:
                    first.execute_command("CLUSTER", "MEET", "127.0.0.1", s.port, self.bus_ports[i])
            first.close()
            _wait("redis cluster", self.healthy)
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        """Every node answers CLUSTER INFO with ``cluster_state:ok`` and knows every other one
        (False while a node is down or rejoining)."""
        for s in self.servers:
            c = s.client(socket_connect_timeout=1, socket_timeout=1)
            try:
                info = c.execute_command("CLUSTER", "INFO")
            except redis.RedisError:
                return False
            finally:
                c.close()
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or f"cluster_known_nodes:{len(self.servers)}" not in text:
                return False
        return True

    @staticmethod
    def owned_by(server: RedisServer, keys: list[str]) -> set[str]:
        """The storage keys whose sessions live on ``server`` (the storage key is the hash tag)."""
        client = server.client()
        try:
            slots = client.execute_command("CLUSTER", "SLOTS")
        finally:
            client.close()
        ranges = [(int(lo), int(hi)) for lo, hi, (_, port, *_), *_ in slots if int(port) == server.port]
        return {k for k in keys if any(lo <= key_slot(k.encode()) <= hi for lo, hi in ranges)}

    def clients(self) -> Iterator[redis.Redis]:
        for s in self.servers:
            yield s.client()

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


class SentinelSetup:
    """One master and one Sentinel watching it as ``service``."""

    def __init__(self, workdir: Path, service: str = "sk-test") -> None:
        self.service = service
        self.master = RedisServer(workdir / "master")
        self.sentinel = RedisServer(workdir / "sentinel", sentinel=True)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service}/0"

    def start(self) -> SentinelSetup:
        try:
            self.master.start()
            self.sentinel.extra = [
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1",
                f"sentinel down-after-milliseconds {self.service} 5000",
            ]
            self.sentinel.start()
            probe = self.sentinel.client()
            try:
                _wait("sentinel", lambda: probe.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service) is not None)
            finally:
                probe.close()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.sentinel.stop()
        self.master.stop()


# ---- one cluster per test session ----------------------------------------------------------

_shared: dict[str, Cluster | BaseException] = {}


def shared_cluster() -> Cluster:
    """The test session's Cluster, started on first use and stopped at exit.

    Raises ``RuntimeError`` if it cannot be started (the caller turns that into a skip, or a
    failure under CI). A failed start is remembered, so later tests do not retry it.
    """
    got: Cluster | BaseException | None = _shared.get("cluster")
    if got is None:
        if not have_redis_server():
            got = RuntimeError("redis-server is not on PATH")
        else:
            workdir = Path(tempfile.mkdtemp(prefix="sk-cluster-"))
            atexit.register(shutil.rmtree, workdir, True)
            # A free port can be taken by another process before redis-server binds it: try
            # again on fresh ports (a server that exits at start fails fast, see start()).
            for attempt in range(3):
                try:
                    got = Cluster(workdir / f"try{attempt}").start()
                except (RuntimeError, OSError, redis.RedisError) as exc:
                    got = RuntimeError(f"could not start a redis cluster: {exc}")
                else:
                    atexit.register(stop_shared)
                    break
        assert got is not None
        _shared["cluster"] = got
    if isinstance(got, BaseException):
        raise RuntimeError(str(got))
    return got


def stop_shared() -> None:
    got = _shared.pop("cluster", None)
    if isinstance(got, Cluster):
        got.stop()


def delete_prefix(clients: Iterator[redis.Redis] | list[redis.Redis], prefix: str) -> int:
    """Delete every key starting with ``prefix`` on each (primary) client; close them."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    n = 0
    for c in clients:
        try:
            for k in list(c.scan_iter(match=pattern, count=1000)):
                n += int(c.delete(k))
        finally:
            c.close()
    return n
