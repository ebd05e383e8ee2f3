"""The two tiny drivers that run a flow generator against a store: one sync, one async.

All request logic lives in :mod:`sessionkeeper.core.flow`; these only pass each yielded
operation to the store and send the result back.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from .core.records import Op
from .stores.base import Store

T = TypeVar("T")


def run_sync(flow: Generator[Op, Any, T], store: Store) -> T:
    """Drive ``flow`` with ``store.execute``."""
    try:
        op = next(flow)
        while True:
            op = flow.send(store.execute(op))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def run_async(flow: Generator[Op, Any, T], store: Store) -> T:
    """Drive ``flow`` with ``await store.aexecute``."""
    try:
        op = next(flow)
        while True:
            op = flow.send(await store.aexecute(op))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
