"""The live traffic of bench/scale.py: another process reading and writing sessions through the
store while the main process fills, waits and purges.

Each "request" is what a request that changes its session costs the store: a ``Load`` of a
live session and an ``Apply`` of a one-key change with the touched metadata (the two store
operations of such a request, made with the same ops the middleware yields). Requests are
paced at ``rate`` per second (a fixed schedule, so a slow store does not slow the offered
load down much), latency is measured per request, and any exception or a session that went
missing (which a purge must never cause: these sessions are live) counts as an error.
"""

from __future__ import annotations

import time
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

#: one request's record: (monotonic start, seconds taken, error: 0 ok, 1 exception, 2 lost)
Sample = tuple[float, float, int]


def run(url: str, options: dict[str, Any], keys: list[str], rate: float, stop: Event,
        out: Connection, max_seconds: float) -> None:
    from sessionkeeper import open_store
    from sessionkeeper.core.records import Apply, Delta, Load

    store = open_store(url, **options)
    samples: list[Sample] = []
    errors: dict[str, int] = {}
    interval = 1 / rate
    deadline = time.monotonic() + max_seconds
    due = time.monotonic()
    i = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            key = keys[i % len(keys)]
            i += 1
            started = time.monotonic()
            t0 = time.perf_counter()
            err = 0
            try:
                now = time.time()
                rec = store.execute(Load(key, now))
                if rec is None:
                    err = 2
                else:
                    meta = replace(rec.meta, last_seen=now, expires_at=min(now + 1800, rec.meta.absolute_at))
                    if not store.execute(Apply(key, Delta(set={"n": str(i)}, meta=meta), now)):
                        err = 2
            except Exception as exc:
                err = 1
                name = f"{type(exc).__name__}: {str(exc)[:120]}"
                errors[name] = errors.get(name, 0) + 1
            samples.append((started, time.perf_counter() - t0, err))
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1:
                due = time.monotonic()  # fell far behind (a stall): do not burst to catch up
    finally:
        store.close()
        out.send((samples, errors))
        out.close()
