"""Expiry arithmetic. Every function takes ``now`` (seconds since the epoch, a float) so the
rules can be tested with plain numbers and the adapters inject the real clock.

Rules:
- idle expiry slides: ``last_seen + idle``; absolute expiry is fixed at creation:
  ``created_at + absolute``. A session is dead at ``min(idle expiry, absolute expiry)``.
- ``last_seen`` is not written on every request: a request that changes nothing rewrites it
  only when it is older than ``touch_interval`` (so idle expiry can come up to that early).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ..errors import ConfigError

Clock = Callable[[], float]
system_clock: Clock = time.time


def seconds(value: float | timedelta, name: str) -> float:
    """Accept seconds or a :class:`timedelta`; reject negatives and non-numbers."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds or a timedelta, not {value!r}")
    if not 0 < value < math.inf:  # also rejects nan
        raise ConfigError(f"{name} must be a finite number of seconds above 0, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Idle and absolute lifetimes and the touch throttle, all in seconds."""

    idle: float = 30 * 60.0
    absolute: float = 12 * 3600.0
    touch_interval: float | None = None  # None: a tenth of idle, at most 60 s

    @property
    def touch_every(self) -> float:
        if self.touch_interval is not None:
            return self.touch_interval
        return min(60.0, self.idle / 10)

    def absolute_at(self, created_at: float) -> float:
        return created_at + self.absolute

    def expires_at(self, last_seen: float, absolute_at: float) -> float:
        return min(last_seen + self.idle, absolute_at)

    def touch_due(self, last_seen: float, now: float) -> bool:
        return now - last_seen >= self.touch_every
