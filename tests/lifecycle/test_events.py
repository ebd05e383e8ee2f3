"""Issue 4, point 6: audit events — every kind, with the right user and a short public session
id, delivered to sync and async subscribers from ASGI, WSGI and Flask; a subscriber that raises
breaks nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from sessionkeeper.core import ids

from .conftest import (
    CHROME_WIN,
    Browser,
    CountingStore,
    Events,
    LClient,
    is_public_id,
    secrets_of,
)

ALL_KINDS = ["created", "rotated", "logged_in", "logged_out", "destroyed", "revoked", "expired",
             "anomaly", "refused"]


def run_every_kind(c: LClient) -> dict[str, str | None]:
    """Make every kind of event happen once or more; returns the tokens involved."""
    anon = Browser(c)
    anon.go("/set", k="a", v="1")  # created (anonymous)
    t_anon = anon.token
    anon.go("/regenerate")  # rotated (anonymous)
    t_anon2 = anon.token
    anon.go("/destroy")  # destroyed (nobody signed in)

    alice = Browser(c, "203.0.113.5")
    alice.login("alice")  # created + logged_in
    t_alice = alice.token
    refused = Browser(c, "203.0.113.6")
    refused.go("/login", u="alice")  # the cap (1) refuses it
    thief = Browser(c, "198.51.100.9", CHROME_WIN)
    thief.token = alice.token
    thief.whoami()  # anomaly (policy "log")
    alice.go("/logout")  # logged_out

    bob = Browser(c)
    bob.login("bob")
    t_bob = bob.token
    assert c.manager.revoke_all("bob") == 1  # revoked (by an admin, outside a request)

    carol = Browser(c)
    carol.login("carol")
    t_carol = carol.token
    c.clock.advance(1800)  # idle timeout
    assert carol.whoami()["user_id"] is None  # expired, found on access

    for i in range(3):  # unknown IDs (threshold 3): anomaly unknown_ids
        probe = Browser(c, "192.0.2.1")
        probe.token = ids.new_token() if i % 2 == 0 else "not-a-token"
        probe.go("/all")
    return {"anon": t_anon, "anon2": t_anon2, "alice": t_alice, "bob": t_bob, "carol": t_carol}


@pytest.mark.parametrize("broken", [False, True])
def test_every_kind_reaches_sync_and_async_subscribers(
        kind: str, store: CountingStore, make_client: Callable[..., LClient], broken: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    c = make_client(kind, store, events=events, broken_subscriber=broken, max_sessions_per_user=1,
                    on_session_limit="refuse", anomaly_policy="log", probe_threshold=3)
    with caplog.at_level(logging.ERROR, "sessionkeeper.events"):
        tokens = run_every_kind(c)
    seen = events.sync_seen
    assert sorted(set(events.kinds())) == sorted(ALL_KINDS)
    assert events.async_seen == seen  # the async subscriber got the same, in the same order
    if broken:
        # two raising subscribers, called for every event: logged, and nothing else broke
        assert events.failures == 2 * len(seen)
        logged = [r for r in caplog.records if r.name == "sessionkeeper.events"]
        assert len(logged) == 2 * len(seen)
        assert all(r.exc_info is not None and "audit hook down" in str(r.exc_info[1]) for r in logged)
    else:
        assert events.failures == 0
        assert [r for r in caplog.records if r.name == "sessionkeeper.events"] == []

    def users(kind_: str) -> list[str | None]:
        return [e.user_id for e in events.of(kind_)]

    assert users("created") == [None, "alice", "bob", "carol"]
    assert users("rotated") == [None]
    assert users("destroyed") == [None]
    assert users("logged_in") == ["alice", "bob", "carol"]
    assert users("logged_out") == ["alice"]
    assert users("refused") == ["alice"]
    assert users("revoked") == ["bob"]
    assert users("expired") == ["carol"]
    # the thief's request drifted from the login's fingerprint: one report. Alice's own logout
    # request is compared with her login's fingerprint, which a drifted request never
    # overwrites (issue 8.2): no report.
    assert users("anomaly") == ["alice", None]
    fingerprint, probing = events.of("anomaly")
    assert fingerprint.detail["reason"] == "fingerprint" and fingerprint.detail["changed"] == "ua,net"
    assert probing.detail["reason"] == "unknown_ids" and probing.detail["network"] == "192.0.2.0/24"
    assert probing.session_id is None

    # Short public ids: the same id names the same session across its events.
    for e in seen:
        if e.kind in ("refused",) or (e.kind == "anomaly" and e.user_id is None):
            continue
        assert is_public_id(e.session_id), e
    (alice_in,) = [e for e in events.of("logged_in") if e.user_id == "alice"]
    assert fingerprint.session_id == alice_in.session_id == events.of("logged_out")[0].session_id
    (carol_in,) = [e for e in events.of("logged_in") if e.user_id == "carol"]
    assert events.of("expired")[0].session_id == carol_in.session_id
    assert events.of("created")[0].session_id != events.of("rotated")[0].session_id  # new id, new name
    assert events.of("rotated")[0].session_id == events.of("destroyed")[0].session_id

    # No event carries a token or a storage key.
    secrets = secrets_of(store, *tokens.values())
    for e in seen:
        for secret in secrets:
            assert secret not in repr(e)


def test_expired_is_reported_once(client: LClient) -> None:
    c = client
    b = Browser(c)
    b.login("dave")
    t = b.token
    c.clock.advance(1800)
    assert b.whoami()["new"] is True
    b.token = t
    assert b.whoami()["new"] is True
    assert [e.user_id for e in c.events.of("expired")] == ["dave"]
    assert c.manager.devices("dave") == []


def test_sync_manager_inside_an_async_endpoint_still_reaches_async_subscribers(
        store: CountingStore, make_client: Callable[..., LClient]) -> None:
    """SessionManager's sync form called from code that runs in an event loop (an ASGI app
    using the sync form by mistake): the async subscriber still gets the event."""
    c = make_client("asgi", store)
    b = Browser(c)
    b.login("erin")
    c.events.clear()

    async def revoke_in_loop() -> int:
        return c.manager.revoke_all("erin")

    assert asyncio.run(revoke_in_loop()) == 1
    assert c.events.kinds() == ["revoked"]
    assert c.events.async_seen == c.events.sync_seen


def test_rotation_events_link_the_previous_id(client: LClient) -> None:
    c = client
    b = Browser(c)
    b.go("/set", k="a", v="1")
    first = b.whoami()["public_id"]
    b.login("alice")
    second = b.whoami()["public_id"]
    b.go("/regenerate")
    third = b.whoami()["public_id"]
    assert len({first, second, third}) == 3
    (login,) = c.events.of("logged_in")
    (rotated,) = c.events.of("rotated")
    assert (login.session_id, login.detail["previous"]) == (second, first)
    assert (rotated.session_id, rotated.detail["previous"]) == (third, second)
