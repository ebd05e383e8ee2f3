"""Hand audit events to subscribers: plain callables, sync or async.

A subscriber that raises is logged and skipped: an audit hook must not break a user's
request (nor stop the other subscribers). Async subscribers are awaited from async code; from
sync code they run to completion in a private event loop (in a helper thread when the calling
thread already runs an event loop, e.g. sync code called from an async endpoint).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
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
                    _run(result)
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


def _run(awaitable: object) -> None:
    """Run ``awaitable`` to completion from sync code; raise what it raised."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_await(awaitable))
        return
    # This thread runs a loop already (asyncio.run would refuse): use a private one elsewhere.
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(_await(awaitable))
        except BaseException as exc:  # handed back to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="sessionkeeper-events", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
