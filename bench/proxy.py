"""A counting TCP proxy for the store round-trip measurements (stdlib only).

It sits between an app server and Redis or PostgreSQL on loopback and counts, per
direction change, the *round trips*: a client burst sent after the server last spoke (or the
first burst on a connection) is one round trip, however many writes or commands it holds. For
PostgreSQL (plain protocol; the bench server has ``ssl=off``) it also parses the frontend
messages and counts statements (simple ``Query`` and extended-protocol ``Execute``).
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass, field

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


@dataclass
class Counts:
    round_trips: int = 0
    connections: int = 0
    statements: int = 0
    messages: dict[str, int] = field(default_factory=dict)

    def copy(self) -> Counts:
        return Counts(self.round_trips, self.connections, self.statements, dict(self.messages))

    def minus(self, other: Counts) -> Counts:
        msgs = {k: v - other.messages.get(k, 0) for k, v in self.messages.items()}
        return Counts(
            self.round_trips - other.round_trips,
            self.connections - other.connections,
            self.statements - other.statements,
            {k: v for k, v in msgs.items() if v},
        )


class _PgParser:
    """Counts frontend messages in a PostgreSQL client stream."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buf = b""
        self.startup = True

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.startup:
                if len(self.buf) < 8:
                    return
                length, code = struct.unpack("!ii", self.buf[:8])
                if len(self.buf) < length:
                    return
                self.buf = self.buf[length:]
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    self.startup = False
                continue
            if len(self.buf) < 5:
                return
            kind = chr(self.buf[0])
            (length,) = struct.unpack("!i", self.buf[1:5])
            if len(self.buf) < 1 + length:
                return
            self.buf = self.buf[1 + length :]
            self.counts.messages[kind] = self.counts.messages.get(kind, 0) + 1
            if kind in ("Q", "E"):
                self.counts.statements += 1


class CountingProxy:
    """``CountingProxy(target_port, postgres=False)``; ``.port`` is where clients connect."""

    def __init__(self, target_port: int, postgres: bool = False, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.postgres = postgres
        self.counts = Counts()
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="counting-proxy")
        self.port = 0
        self._thread.start()
        self._ready.wait(10)

    def snapshot(self) -> Counts:
        with self._lock:
            return self.counts.copy()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            cwriter.close()
            return
        with self._lock:
            self.counts.connections += 1
        state = {"server_spoke": True}  # the first client burst counts as a round trip
        parser = _PgParser(self.counts) if self.postgres else None

        async def client_to_server() -> None:
            while data := await creader.read(65536):
                with self._lock:
                    if state["server_spoke"]:
                        self.counts.round_trips += 1
                        state["server_spoke"] = False
                    if parser is not None:
                        parser.feed(data)
                swriter.write(data)
                await swriter.drain()
            swriter.close()

        async def server_to_client() -> None:
            while data := await sreader.read(65536):
                with self._lock:
                    state["server_spoke"] = True
                cwriter.write(data)
                await cwriter.drain()
            cwriter.close()

        try:
            await asyncio.gather(client_to_server(), server_to_client())
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (cwriter, swriter):
                w.close()

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self._thread.join(5)
