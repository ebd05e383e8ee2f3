"""What every bench app shares: the variant it runs, read from the environment.

BENCH_SESSION  none | sk | signed | flask-session | starsessions | django-cache
BENCH_STORE    sessionkeeper store URL (for ``sk``)
BENCH_REDIS    Redis URL for the peers that keep sessions in Redis
"""

from __future__ import annotations

import os

SESSION = os.environ.get("BENCH_SESSION", "none")
STORE_URL = os.environ.get("BENCH_STORE", "memory://")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
SECRET = "bench-secret-key-not-for-production-0123456789abcdef"


def delay_seconds(raw: str | None) -> float:
    """The ``delay`` query parameter (milliseconds of simulated app work) in seconds."""
    try:
        return max(0.0, min(float(raw or 0), 1000.0)) / 1000.0
    except ValueError:
        return 0.0


def count_cart(session: object) -> dict[str, int]:
    """How many cart items survived, written the naive way and the per-key way."""
    get = session.get  # type: ignore[attr-defined]
    cart = get("cart") or {}
    keys = sum(1 for k in list(session) if isinstance(k, str) and k.startswith("item:"))  # type: ignore[call-overload]
    items = get("cart_list") or []
    return {"naive": len(cart), "per_key": keys, "list": len(items)}
