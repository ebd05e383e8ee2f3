"""The two tiny drivers that run a flow generator against a store: one sync, one async.

All request logic lives in :mod:`sessionkeeper.core.flow`; these only pass each yielded
operation to the store and send the result back. Since every request's store operations pass
through here, this is also the one place that notes outages and recoveries (logged once each,
see :func:`sessionkeeper.stores.base.report_unavailable`), whatever the backend.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, TypeVar

from .core.records import Op
from .errors import StoreUnavailable
from .stores.base import Store, report_ok, report_unavailable

T = TypeVar("T")


def run_sync(flow: Generator[Op, Any, T], store: Store) -> T:
    """Drive ``flow`` with ``store.execute``."""
    started = time.monotonic()
    ran = False
    try:
        op = next(flow)
        while True:
            result = store.execute(op)
            ran = True
            op = flow.send(result)
    except StopIteration as stop:
        if ran and store._down_since is not None:
            report_ok(store, started)
        return stop.value  # type: ignore[no-any-return]
    except StoreUnavailable as exc:
        report_unavailable(store, exc)
        raise


async def run_async(flow: Generator[Op, Any, T], store: Store) -> T:
    """Drive ``flow`` with ``await store.aexecute``."""
    started = time.monotonic()
    ran = False
    try:
        op = next(flow)
        while True:
            result = await store.aexecute(op)
            ran = True
            op = flow.send(result)
    except StopIteration as stop:
        if ran and store._down_since is not None:
            report_ok(store, started)
        return stop.value  # type: ignore[no-any-return]
    except StoreUnavailable as exc:
        report_unavailable(store, exc)
        raise
