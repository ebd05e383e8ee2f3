"""Hand audit events to subscribers: plain callables, sync or async.

A subscriber that raises is logged and skipped: an audit hook must not break a user's
request (nor stop the other subscribers). Async subscribers are awaited from async code; from
sync code they run to completion in a private event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable, Sequence

from .core.events import SessionEvent, Subscriber

log = logging.getLogger("sessionkeeper.events")


def emit_sync(subscribers: Sequence[Subscriber], events: Iterable[SessionEvent]) -> None:
    """Deliver ``events`` from sync code."""
    for event in events:
        for sub in subscribers:
            try:
                result = sub(event)
                if inspect.isawaitable(result):
                    asyncio.run(_await(result))
            except Exception:
                log.exception("session event subscriber %r failed on %s", sub, event.kind)


async def emit_async(subscribers: Sequence[Subscriber], events: Iterable[SessionEvent]) -> None:
    """Deliver ``events`` from async code."""
    for event in events:
        for sub in subscribers:
            try:
                result = sub(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("session event subscriber %r failed on %s", sub, event.kind)


async def _await(awaitable: object) -> None:
    await awaitable  # type: ignore[misc]
