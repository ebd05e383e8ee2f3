"""Issue 4, point 7: suspicious use. The fingerprint recorded at login (user-agent family, /24
network) against later requests, under each anomaly policy; and a burst of unknown or
malformed IDs from one network."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionkeeper.core import ids

from .conftest import CHROME_WIN, FIREFOX_LINUX, T0, Browser, CountingStore, LClient

FIREFOX_NEXT = FIREFOX_LINUX.replace("133.0", "134.0")

POLICIES = ["ignore", "log", "rotate", "reauthenticate", "revoke"]


def signed_in(c: LClient) -> Browser:
    b = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    b.login("alice")
    return b


def stolen(c: LClient, b: Browser, ip: str = "198.51.100.20", ua: str = CHROME_WIN) -> Browser:
    thief = Browser(c, ip, ua)
    thief.token = b.token
    return thief


@pytest.mark.parametrize("policy", POLICIES)
def test_policies(kind: str, store: CountingStore, make_client: Callable[..., LClient], policy: str) -> None:
    """Each policy's effect on the owner and on a replay from another browser and network
    (issue 8.2: the drifted request is the one that loses; WSTG-SESS-01/ASVS V7.5)."""
    c = make_client(kind, store, anomaly_policy=policy)
    b = signed_in(c)
    c.clock.advance(60)
    # Ordinary movement is no anomaly: a browser update, another address in the same /24.
    b.ip, b.ua = "203.0.113.77", FIREFOX_NEXT
    assert b.whoami()["user_id"] == "alice"
    assert c.events.of("anomaly") == []

    original = b.token
    thief = stolen(c, b)
    r = thief.go("/whoami")
    me = r.json
    anomalies = c.events.of("anomaly")
    if policy == "ignore":
        assert anomalies == []
    else:
        (a,) = anomalies
        assert (a.user_id, a.detail["reason"], a.detail["changed"], a.detail["policy"]) == (
            "alice", "fingerprint", "ua,net", policy)
        if policy in ("log", "reauthenticate", "rotate"):
            assert a.session_id == c.manager.devices("alice")[0].session_id

    if policy in ("log", "reauthenticate"):
        # One drifted client is reported once: its next request is quiet, and so is the
        # owner's (compared with the login's fingerprint, which the thief did not overwrite).
        thief.whoami()
        assert b.whoami()["user_id"] == "alice"
        assert len(c.events.of("anomaly")) == 1

    if policy in ("ignore", "log"):
        assert r.token is None  # nothing changes for the client
        assert (me["user_id"], me["recent"], me["auth_at"]) == ("alice", True, T0)
    elif policy == "rotate":
        # The replay gets a fresh anonymous session and its copy of the token is deleted ...
        assert (me["user_id"], me["new"]) == (None, True)
        assert r.token == ""
        # ... while the owner's session, ID and cookie are exactly as they were.
        r2 = b.go("/whoami")
        assert r2.token is None and b.token == original
        assert (r2.json["user_id"], r2.json["recent"], r2.json["auth_at"]) == ("alice", True, T0)
        assert c.events.of("rotated") == [] and c.events.of("revoked") == []
        # A replay that keeps the stolen token is refused, and reported, every time.
        again = stolen(c, b)
        assert again.whoami()["user_id"] is None
        assert len(c.events.of("anomaly")) == 2
    elif policy == "reauthenticate":
        assert r.token is None
        assert (me["user_id"], me["recent"], me["auth_at"]) == ("alice", False, None)
        assert b.whoami()["recent"] is False  # the owner must prove who they are too
        assert b.go("/reauth").status == 200  # the app asks for the password, then:
        assert b.whoami()["recent"] is True
        # The drifted client never counts as recently authenticated, even after the owner's
        # step-up, and is never handed the (rotated) token; the owner is asked again.
        thief2 = stolen(c, b)
        r3 = thief2.go("/whoami")
        assert (r3.json["user_id"], r3.json["recent"], r3.token) == ("alice", False, None)
        assert b.whoami()["recent"] is False
        assert len(c.events.of("anomaly")) == 2
    else:  # revoke
        assert (me["user_id"], me["new"]) == (None, True)
        assert r.token == ""
        (revoked,) = c.events.of("revoked")
        assert (revoked.user_id, revoked.detail["reason"]) == ("alice", "anomaly")
        assert c.manager.devices("alice") == []
        assert b.whoami()["new"] is True  # the owner's copy is dead too


@pytest.mark.parametrize(("ip", "ua", "changed"), [
    ("198.51.100.20", FIREFOX_LINUX, "net"),
    ("203.0.113.200", CHROME_WIN, "ua"),
])
def test_what_changed(client: LClient, ip: str, ua: str, changed: str) -> None:
    c = client
    b = signed_in(c)
    stolen(c, b, ip, ua).whoami()
    (a,) = c.events.of("anomaly")
    assert a.detail["changed"] == changed


def test_anonymous_sessions_have_no_fingerprint(client: LClient) -> None:
    c = client
    b = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    b.go("/set", k="a", v="1")
    other = stolen(c, b)
    assert other.go("/all").json == {"a": "1"}
    assert c.events.of("anomaly") == []


def test_login_records_the_fingerprint_of_the_login_request(client: LClient) -> None:
    """An anonymous session started on one network, signed in from another: the login's own
    client is what later requests are compared with."""
    c = client
    b = Browser(c, "192.0.2.1", CHROME_WIN)
    b.go("/set", k="a", v="1")
    b.ip, b.ua = "203.0.113.5", FIREFOX_LINUX
    b.login("alice")
    assert b.whoami()["user_id"] == "alice"
    assert c.events.of("anomaly") == []
    (device,) = c.manager.devices("alice")
    assert (device.ip, device.user_agent) == ("203.0.113.5", "Firefox on Linux")


def test_burst_of_unknown_ids_is_one_event(kind: str, store: CountingStore,
                                           make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, probe_threshold=10, probe_window=60)
    prober = Browser(c, "203.0.113.50")
    for i in range(25):
        c.clock.advance(1)
        # well-formed but never issued, and malformed, mixed
        prober.token = ids.new_token() if i % 2 else f"junk{i}"
        r = prober.go("/all")
        assert r.status == 200 and r.json == {}
    (a,) = c.events.of("anomaly")
    assert (a.user_id, a.session_id) == (None, None)
    assert a.detail == {"reason": "unknown_ids", "network": "203.0.113.0/24", "count": "10", "window": "60"}
    # the same number from another network, spread over more than the window: no event
    other = Browser(c, "198.51.100.50")
    for _ in range(9):
        c.clock.advance(1)
        other.token = ids.new_token()
        other.go("/all")
    c.clock.advance(120)
    for _ in range(9):
        other.token = ids.new_token()
        other.go("/all")
    assert len(c.events.of("anomaly")) == 1


def test_expired_ids_are_not_probes(kind: str, store: CountingStore,
                                    make_client: Callable[..., LClient]) -> None:
    """A browser coming back with its expired cookie is not guessing IDs."""
    c = make_client(kind, store, probe_threshold=2)
    browsers = [Browser(c, "203.0.113.9") for _ in range(3)]
    for b in browsers:
        b.login("alice")
    c.clock.advance(1800)
    for b in browsers:
        assert b.whoami()["new"] is True
    assert [e.kind for e in c.events.sync_seen if e.kind in ("anomaly", "expired")] == ["expired"] * 3
