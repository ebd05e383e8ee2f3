"""Issue 13: sessions that a purge removes leave an ``expired`` audit event, on every store.

A session that times out and is never requested again is removed by the purge job, not by a
request; without an event from the purge, an audit trail would show its login and nothing
after. ``SessionManager.purge`` / ``apurge`` run ``Purge(report=True)`` and emit one
``expired`` event per session removed (renewal aliases are pointers, not sessions: none for
them), named by public id with the user id and ``reason="purge"``, never by token or storage
key (ASVS 5.0 V7 / WSTG-SESS: session identifiers never in logs, only in a one-way form).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkeeper import SessionConfig, SessionEvent, SessionManager, Store
from sessionkeeper.core import ids
from sessionkeeper.core.records import Create, Meta, Record

from .conftest import _MODULES

NOW = 1_800_000_000.0
SECRET = "purge-events-test-secret"


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    with _MODULES[backend].open(backend, tmp_path) as s:
        yield s


def seed(store: Store) -> tuple[dict[str, Meta], list[str]]:
    """Expired sessions (some signed in), a live one, and an expired renewal alias; the
    expired sessions by storage key, and the tokens behind every record."""
    tokens = [ids.new_token() for _ in range(6)]
    expired: dict[str, Meta] = {}
    for i, token in enumerate(tokens[:4]):
        m = Meta(NOW - 100, NOW - 50, NOW + 10 + i, NOW + 3600, user_id="alice" if i % 2 else None,
                 info={"ua": "Firefox on Linux"})
        assert store.execute(Create(ids.storage_key(token), Record({"cart": "[1]"}, m)))
        expired[ids.storage_key(token)] = m
    live = Meta(NOW, NOW, NOW + 1800, NOW + 3600, user_id="alice")
    assert store.execute(Create(ids.storage_key(tokens[4]), Record({}, live)))
    renewal = Meta(NOW, NOW, NOW + 5, NOW + 5)  # what core/flow.py writes for a renewal's alias
    assert store.execute(Create(ids.alias_key(tokens[5]), Record({"to": '"wrapped"'}, renewal)))
    return expired, tokens


def check(events: list[SessionEvent], expired: dict[str, Meta], tokens: list[str], at: float) -> None:
    secret = SessionConfig(id_secret=SECRET).id_secret_bytes
    want = {ids.public_id(k, secret): m for k, m in expired.items()}
    assert sorted(e.session_id or "" for e in events) == sorted(want)
    for e in events:
        m = want[e.session_id or ""]
        assert e.kind == "expired" and e.at == at and e.user_id == m.user_id
        assert dict(e.detail) == {"reason": "purge", "expires_at": repr(m.expires_at)}
    text = repr(events)
    for secret_text in [*tokens, *expired, *(ids.storage_key(t) for t in tokens), ids.alias_key(tokens[5])]:
        assert secret_text not in text


@pytest.mark.parametrize("face", ["sync", "async"])
def test_purge_emits_an_expired_event_per_session_removed(store: Store, face: str) -> None:
    expired, tokens = seed(store)
    events: list[SessionEvent] = []
    clock = [NOW + 100.0]
    manager = SessionManager(store, id_secret=SECRET, on_event=[events.append], clock=lambda: clock[0])
    if face == "sync":
        removed = manager.purge(now=NOW + 20, batch=2)
        first = list(events)
        again = manager.purge(now=NOW + 20)
    else:

        async def purge_twice() -> tuple[int, list[SessionEvent], int]:
            try:
                removed = await manager.apurge(now=NOW + 20, batch=2)
                first = list(events)
                return removed, first, await manager.apurge(now=NOW + 20)
            finally:
                await store.aclose()

        removed, first, again = asyncio.run(purge_twice())
    assert removed == 5  # four sessions and the alias, as Store.purge counts them
    check(first, expired, tokens, at=NOW + 100)
    assert again == 0 and events == first  # nothing left: no second event for anyone

def test_purge_defaults_to_the_clock_and_async_subscribers_are_awaited(store: Store) -> None:
    expired, tokens = seed(store)
    got: list[SessionEvent] = []

    async def subscriber(event: SessionEvent) -> None:
        got.append(event)

    manager = SessionManager(store, id_secret=SECRET, on_event=[subscriber], clock=lambda: NOW + 30)
    assert manager.purge() == 5
    check(got, expired, tokens, at=NOW + 30)
