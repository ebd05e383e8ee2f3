"""What ``sessionkeeper.otel`` costs per store operation and per event, on the memory store.

    .venv/bin/python bench/otel_overhead.py              # 200,000 ops per round, 7 rounds
    .venv/bin/python bench/otel_overhead.py --n 50000 --rounds 5

The memory store answers in about a microsecond, so any overhead shows in full (a network
store's round trip hides it). Variants, run in alternating rounds, median reported:

- ``plain``: the store itself;
- ``proxy, no SDK``: :func:`sessionkeeper.otel.instrument` with the API's default no-op
  meters (what an app gets before it installs an SDK);
- ``proxy, SDK``: with an SDK ``MeterProvider`` and an in-memory reader (the recording and
  aggregation an exporter would then read; exporting itself is off the request path).

Operations: a ``Load`` of a live session and an ``Apply`` of a one-key change (a request that
writes does both). Also the event subscriber's cost per event. Times are the process's CPU
time (``time.process_time``), not wall time, so that other processes on a shared machine do
not inflate them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from sessionkeeper import SessionEvent, Store, open_store, otel
from sessionkeeper.core.records import Apply, Create, Delta, Load, Meta, Record

KEY = "ab" * 32


def workload(store: Store, n: int) -> float:
    """Seconds per (Load + Apply) pair, over ``n`` pairs."""
    now = time.time()
    load = Load(KEY, now)
    apply = Apply(KEY, Delta(set={"n": "1"}), now)
    execute = store.execute
    started = time.process_time()
    for _ in range(n):
        execute(load)
        execute(apply)
    return (time.process_time() - started) / n


def events(sub: Callable[[SessionEvent], None], n: int) -> float:
    evs = [SessionEvent("created", 0.0, "pid", None, {}),
           SessionEvent("revoked", 0.0, "pid", "u1", {"reason": "session_limit"})]
    started = time.process_time()
    for i in range(n):
        sub(evs[i & 1])
    return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="operation pairs per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    raw = open_store("memory://")
    now = time.time()
    raw.execute(Create(KEY, Record({"n": "0"}, Meta(now, now, now + 3600, now + 3600))))
    sdk = MeterProvider(metric_readers=[InMemoryMetricReader()])
    variants: dict[str, Store] = {
        "plain": raw,
        "proxy, no SDK": otel.instrument(raw, meter_provider=NoOpMeterProvider()),
        "proxy, SDK": otel.instrument(raw, meter_provider=sdk),
    }
    subs = {
        "subscriber, no SDK": otel.subscriber(meter_provider=NoOpMeterProvider(), store="memory"),
        "subscriber, SDK": otel.subscriber(meter_provider=sdk, store="memory", adapter="asgi"),
    }
    per: dict[str, list[float]] = {name: [] for name in [*variants, *subs]}
    for _ in range(args.rounds):
        for name, store in variants.items():
            per[name].append(workload(store, args.n) / 2)  # per operation
        for name, sub in subs.items():
            per[name].append(events(sub, args.n))
    base = statistics.median(per["plain"])
    print(f"median of {args.rounds} rounds, {args.n:,} Load+Apply pairs (or events) per round\n")
    print("| variant | µs per store op (or per event) | added over plain |")
    print("|---|---:|---:|")
    for name, values in per.items():
        med = statistics.median(values)
        added = f"+{(med - base) * 1e6:.2f} µs" if name.startswith("proxy") else ""
        print(f"| {name} | {med * 1e6:.2f} | {added} |")
    sdk.shutdown()


if __name__ == "__main__":
    main()
