"""Bounded synchronisation for concurrency tests: hold requests together, or hold one back.

Every wait ends after :data:`WAIT` seconds at most, so a broken test fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading

WAIT = 20.0  # upper bound for any single wait; never reached when things work


class Rendezvous:
    """Holds requests until ``parties`` of them have arrived (or a bounded wait ends)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.barrier = threading.Barrier(parties, timeout=WAIT)
        self.count = 0
        self.event: asyncio.Event | None = None

    def wait_sync(self) -> None:
        self.barrier.wait()

    async def wait_async(self) -> None:
        # ASGI requests all run on one event loop: a counter and an Event suffice.
        if self.event is None:
            self.event = asyncio.Event()
        self.count += 1
        if self.count == self.parties:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), WAIT)


class Gate:
    """A slow request signals ``reached`` at its chosen point, then waits for ``release``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.reached.set()
        assert self.release.wait(WAIT), "slow request was never released"
