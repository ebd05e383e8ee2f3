"""Notice a client that sends many session IDs the server never issued (ID guessing, or a
stolen-cookie replay after revocation).

Counts unknown IDs per client network in a fixed window and reports once when a client crosses
the threshold. Memory is bounded: at most ``max_clients`` networks are tracked; the oldest
windows are dropped first. Per process: across many app servers each sees its share.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class ProbeMonitor:
    """``note(network, now)`` is True exactly when ``network`` crosses ``threshold``."""

    threshold: int = 20
    window: float = 60.0
    max_clients: int = 10_000
    _seen: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)

    def note(self, network: str, now: float) -> bool:
        start, count = self._seen.pop(network, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        count += 1
        self._seen[network] = (start, count)
        while len(self._seen) > self.max_clients:
            self._seen.popitem(last=False)
        return count == self.threshold
