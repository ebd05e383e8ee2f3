"""Issue 4, points 1, 2 and 5: "your devices", revocation, the per-user cap, and an index that
never shows a dead session — through ASGI, WSGI and Flask, on memory, SQLite and file stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sessionkeeper import SessionConfig, SessionManager, Store
from sessionkeeper.core import ids
from sessionkeeper.core.records import Delta, ListUser, Op, Rename

from .conftest import (
    CHROME_WIN,
    FIREFOX_LINUX,
    SAFARI_IOS,
    Browser,
    CountingStore,
    LClient,
    is_public_id,
    secrets_of,
)
from .conftest import T0 as START


def three_devices(c: LClient) -> tuple[Browser, Browser, Browser]:
    """alice signs in from Firefox/Linux, Chrome/Windows and Safari/iOS, 100 s apart."""
    fx = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    ch = Browser(c, "198.51.100.7", CHROME_WIN)
    io = Browser(c, "192.0.2.9", SAFARI_IOS)
    for i, b in enumerate((fx, ch, io)):
        if i:
            c.clock.advance(100)
        b.login("alice")
    return fx, ch, io


def scan(c: LClient, *browsers: Browser, old: tuple[str | None, ...] = ()) -> None:
    """No token or storage key in any Device or event the test saw."""
    secrets = secrets_of(c.store, *(b.token for b in browsers), *old)
    assert secrets
    texts = [repr(d) for d in c.devices_seen] + [repr(e) for e in c.events.sync_seen]
    texts += [repr(e) for e in c.events.async_seen]
    assert texts
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_devices_from_a_request_and_from_outside(client: LClient) -> None:
    c = client
    fx, ch, io = three_devices(c)
    pre = (fx.token, ch.token, io.token)
    c.clock.advance(100)
    r = ch.go("/devices")
    assert r.status == 200
    devices = r.json
    assert c.manager.calls == (["adevices"] if c.kind == "asgi" else ["devices"])
    assert [d["last_seen"] for d in devices] == sorted((d["last_seen"] for d in devices), reverse=True)
    assert [d["current"] for d in devices].count(True) == 1
    by_ua = {d["user_agent"]: d for d in devices}
    assert set(by_ua) == {"Firefox on Linux", "Chrome on Windows", "Safari on iOS"}
    assert by_ua["Chrome on Windows"]["current"] is True
    assert [by_ua[u]["ip"] for u in ("Firefox on Linux", "Chrome on Windows", "Safari on iOS")] == [
        "203.0.113.5", "198.51.100.7", "192.0.2.9"]
    assert [by_ua[u]["created_at"] for u in ("Firefox on Linux", "Chrome on Windows", "Safari on iOS")] == [
        START, START + 100, START + 200]
    assert [by_ua[u]["last_seen"] for u in ("Firefox on Linux", "Safari on iOS")] == [START, START + 200]
    assert all(d["auth_at"] == d["created_at"] for d in devices)
    assert all(is_public_id(d["session_id"]) for d in devices)
    assert len({d["session_id"] for d in devices}) == 3
    # The device list names the asking session by the same public id the session carries.
    me = ch.whoami()
    assert me["public_id"] == by_ua["Chrome on Windows"]["session_id"]

    # An admin, outside any request: the same sessions, none of them "current".
    outside = c.manager.devices("alice")
    c.devices_seen.extend(outside)
    assert sorted(d.session_id for d in outside) == sorted(d["session_id"] for d in devices)
    assert not any(d.current for d in outside)
    assert c.manager.devices("bob") == []
    assert c.manager.devices() == []  # no user, no current session: nothing
    scan(c, fx, ch, io, old=pre)


def test_revoke_one_others_all(client: LClient) -> None:
    c = client
    fx, ch, io = three_devices(c)
    ios_id = next(d["session_id"] for d in fx.go("/devices").json if d["user_agent"] == "Safari on iOS")

    # revoke one (from Firefox): the iPhone's very next request is anonymous
    assert fx.go("/revoke", sid=ios_id).json is True
    assert fx.go("/revoke", sid=ios_id).json is False  # gone already
    me = io.whoami()
    assert (me["user_id"], me["new"]) == (None, True)
    assert sorted(d["user_agent"] for d in fx.go("/devices").json) == ["Chrome on Windows",
                                                                       "Firefox on Linux"]
    # "log out my other devices" (from Chrome)
    assert ch.go("/revoke_others").json == 1
    me = fx.whoami()
    assert (me["user_id"], me["new"]) == (None, True)
    assert ch.whoami()["user_id"] == "alice"
    assert [d["user_agent"] for d in ch.go("/devices").json] == ["Chrome on Windows"]
    # log in again on Firefox, then revoke all (from Firefox, the asking session included)
    fx.token = None
    fx.login("alice")
    assert fx.go("/revoke_all").json == 2
    for b in (fx, ch):
        me = b.whoami()
        assert (me["user_id"], me["new"]) == (None, True)
    assert c.manager.devices("alice") == []

    revoked = c.events.of("revoked")
    assert [e.detail["reason"] for e in revoked] == ["revoked", "revoke_others", "revoke_all", "revoke_all"]
    assert all(e.user_id == "alice" and is_public_id(e.session_id) for e in revoked)
    assert revoked[0].session_id == ios_id
    assert c.events.async_seen == c.events.sync_seen
    scan(c, fx, ch, io)
    if c.kind == "asgi":
        assert {"arevoke", "arevoke_others", "arevoke_all"} <= set(c.manager.calls)
        assert not {"revoke", "revoke_others", "revoke_all"} & set(c.manager.calls)


def test_admin_revokes_from_outside(client: LClient) -> None:
    c = client
    fx, ch, _io = three_devices(c)
    sid = next(d.session_id for d in c.manager.devices("alice") if d.user_agent == "Firefox on Linux")
    assert c.manager.revoke("alice", sid) is True
    assert c.manager.revoke("bob", sid) is False  # another user's session id: nothing
    assert fx.whoami()["user_id"] is None
    assert c.manager.revoke_all("alice") == 2
    assert ch.whoami()["user_id"] is None
    assert c.manager.devices("alice") == []


@pytest.mark.parametrize("policy", ["evict", "refuse"])
def test_session_cap(kind: str, store: CountingStore, make_client: Callable[..., LClient],
                     policy: str) -> None:
    c = make_client(kind, store, max_sessions_per_user=2, on_session_limit=policy)
    one = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    two = Browser(c, "198.51.100.7", CHROME_WIN)
    three = Browser(c, "192.0.2.9", SAFARI_IOS)
    one.login("alice")
    c.clock.advance(100)
    two.login("alice")
    c.clock.advance(100)
    assert one.whoami()["user_id"] == "alice"  # "one" is now the more recently used
    c.clock.advance(100)
    three.go("/set", k="cart", v="1")  # an anonymous session first: login rotates it
    pre_login = three.token
    r = three.login("alice") if policy == "evict" else three.go("/login", u="alice")
    users = {name: b.whoami()["user_id"] for name, b in (("one", one), ("two", two), ("three", three))}
    if policy == "evict":
        assert users == {"one": "alice", "two": None, "three": "alice"}  # least recently used went
        (revoked,) = c.events.of("revoked")
        assert revoked.detail["reason"] == "session_limit" and revoked.user_id == "alice"
        assert c.events.of("refused") == []
    else:
        assert r.status == 200
        assert users == {"one": "alice", "two": "alice", "three": None}
        assert three.token == pre_login  # not rotated: the login did not happen
        assert three.go("/all").json == {"cart": "1"}  # the anonymous session is intact
        (refused,) = c.events.of("refused")
        assert refused.user_id == "alice" and refused.detail["reason"] == "session_limit"
        assert c.events.of("revoked") == [] and len(c.events.of("logged_in")) == 2
    assert len(c.manager.devices("alice")) == 2


@pytest.mark.parametrize("policy", ["evict", "refuse"])
def test_session_cap_fresh_client(kind: str, store: CountingStore, make_client: Callable[..., LClient],
                                  policy: str) -> None:
    """The third login comes with no session at all (the login creates it)."""
    c = make_client(kind, store, max_sessions_per_user=2, on_session_limit=policy)
    browsers = [Browser(c, f"192.0.2.{i}", FIREFOX_LINUX) for i in range(3)]
    for b in browsers[:2]:
        b.login("alice")
        c.clock.advance(100)
    r = browsers[2].go("/login", u="alice")
    assert r.status == 200
    if policy == "refuse":
        assert r.token is None  # nothing to keep: no session, no cookie
        assert [b.whoami()["user_id"] for b in browsers] == ["alice", "alice", None]
        (refused,) = c.events.of("refused")
        assert refused.user_id == "alice"
    else:
        assert [b.whoami()["user_id"] for b in browsers] == [None, "alice", "alice"]
        assert [e.detail["reason"] for e in c.events.of("revoked")] == ["session_limit"]
    assert len(c.manager.devices("alice")) == 2


def test_cap_counts_other_users_separately(client: LClient) -> None:
    c = client
    # Without a cap, any number of sessions.
    for i in range(4):
        Browser(c, f"192.0.2.{i}").login("alice")
    Browser(c).login("bob")
    assert len(c.manager.devices("alice")) == 4
    assert len(c.manager.devices("bob")) == 1


# ---- point 5: the index never shows a dead session -------------------------------------------


def test_expired_and_revoked_never_listed(client: LClient) -> None:
    c = client
    fx, ch, io = three_devices(c)  # logged in at +0, +100, +200 (30 min idle timeout)
    c.clock.advance(1000)
    assert ch.whoami()["user_id"] == "alice"  # Chrome stays active (+1200)
    c.clock.advance(700)  # +1900: Firefox idle since +0 -> dead; iPhone since +200: alive
    listed = {d["user_agent"] for d in ch.go("/devices").json}
    assert listed == {"Chrome on Windows", "Safari on iOS"}
    assert {d.user_agent for d in c.manager.devices("alice")} == listed
    c.clock.advance(200)  # +2100: the iPhone too
    assert [d["user_agent"] for d in ch.go("/devices").json] == ["Chrome on Windows"]
    # revoked: gone from the list at once
    sid = c.manager.devices("alice")[0].session_id
    assert c.manager.revoke("alice", sid)
    assert ch.go("/devices").json == []
    assert c.manager.devices("alice") == []
    assert fx.whoami()["user_id"] is None and io.whoami()["user_id"] is None


def test_absolute_timeout_and_purge_keep_the_list_clean(kind: str, store: CountingStore,
                                                        make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, idle_timeout=600, absolute_timeout=1000)
    b = Browser(c)
    b.login("alice")
    for _ in range(4):
        c.clock.advance(240)
        assert b.whoami()["user_id"] == "alice"  # active: idle never runs out
    assert len(c.manager.devices("alice")) == 1
    c.clock.advance(50)  # +1010: past the absolute limit
    assert c.manager.devices("alice") == []
    store.inner.purge(c.clock())
    assert c.manager.devices("alice") == []
    assert b.whoami()["user_id"] is None


def test_list_applies_todays_timeouts(kind: str, store: CountingStore,
                                      make_client: Callable[..., LClient]) -> None:
    """Sessions saved under a longer idle timeout than today's are dead today: not listed."""
    old = make_client(kind, store, idle_timeout=3600, absolute_timeout=7200)
    Browser(old).login("alice")
    old.clock.advance(1000)
    new = make_client(kind, store, idle_timeout=600, absolute_timeout=7200)
    assert len(old.manager.devices("alice")) == 1
    assert new.manager.devices("alice") == []
    manager = SessionManager(store, SessionConfig(clock=old.clock, idle_timeout=600))
    assert manager.devices("alice") == []


def test_anonymous_requests_list_and_revoke_nothing(client: LClient) -> None:
    c = client
    victim = Browser(c)
    victim.login("alice")
    (device,) = c.manager.devices("alice")
    anon = Browser(c)
    anon.go("/set", k="a", v="1")
    assert anon.go("/devices").json == []
    assert anon.go("/revoke", sid=device.session_id).json is False
    assert anon.go("/revoke_others").json == 0
    assert anon.go("/revoke_all").json == 0
    assert victim.whoami()["user_id"] == "alice"
    assert c.manager.revoke_all(None) == 0 and c.manager.revoke(None, device.session_id) is False


class RenewsDuringRevoke(CountingStore):
    """A store where, right after the first listing of ``user``'s sessions, one of them is
    renewed (moved to a new key) by a concurrent request: the revoke's delete misses it."""

    def __init__(self, inner: Store, user: str) -> None:
        super().__init__(inner)
        self.user = user
        self.moved: list[str] = []

    def execute(self, op: Op) -> Any:
        result = super().execute(op)
        if isinstance(op, ListUser) and op.user_id == self.user and not self.moved and result:
            old = result[0][0]
            new = ids.storage_key(ids.new_token())
            assert self.inner.execute(Rename(old, new, Delta(), op.now))
            self.moved.append(new)
        return result

    async def aexecute(self, op: Op) -> Any:
        return self.execute(op)


def test_revoke_all_catches_a_session_renewed_meanwhile(kind: str, inner_store: Store,
                                                        make_client: Callable[..., LClient]) -> None:
    racing = RenewsDuringRevoke(inner_store, "alice")
    c = make_client(kind, racing)
    browsers = [Browser(c, f"192.0.2.{i}") for i in range(3)]
    for b in browsers:
        b.login("alice")
    assert c.manager.revoke_all("alice") == 3
    assert racing.moved and c.manager.devices("alice") == []
    assert inner_store.load(racing.moved[0], c.clock()) is None


def test_refused_names_the_session_that_tried(kind: str, store: CountingStore,
                                              make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, max_sessions_per_user=1, on_session_limit="refuse")
    Browser(c).login("alice")
    b = Browser(c, "198.51.100.7")
    b.go("/set", k="a", v="1")
    pid = b.whoami()["public_id"]
    assert is_public_id(pid)
    b.go("/login", u="alice")
    (refused,) = c.events.of("refused")
    assert (refused.session_id, refused.user_id) == (pid, "alice")
