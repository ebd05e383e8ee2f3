"""Issue 4, points 3 and 4: step-up (re-authentication) and ID rotation — periodic renewal
with a grace window for in-flight requests and lost responses, none for a login — plus the
races: a renewal racing parallel requests, a logout racing a slow request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from sessionkeeper import open_store
from sessionkeeper.core import ids
from tests.adapters.test_servers import threaded_wsgi_server

from .conftest import (
    COOKIE,
    KINDS,
    T0,
    WAIT,
    Browser,
    CountingStore,
    LClient,
    Rendezvous,
    store_url_for,
)

RENEW = {"rotate_interval": 900, "renew_grace": 30}


def alive(store: CountingStore, token: str | None, now: float) -> bool:
    assert token
    return store.inner.load(ids.storage_key(token), now) is not None


# ---- point 3: step-up -------------------------------------------------------------------------


@pytest.mark.parametrize("renewal", [False, True])
def test_step_up(kind: str, store: CountingStore, make_client: Callable[..., LClient], renewal: bool) -> None:
    c = make_client(kind, store, **(RENEW if renewal else {}))
    b = Browser(c)
    b.login("alice")
    me = b.whoami(max="300")
    assert (me["user_id"], me["recent"], me["auth_at"]) == ("alice", True, T0)
    c.clock.advance(301)
    assert b.whoami(max="300")["recent"] is False
    assert b.whoami(max="600")["recent"] is True
    before = b.token
    r = b.go("/reauth")
    assert r.status == 200 and r.token and r.token != before  # rotated
    # the old cookie is dead at once, renewal grace or not
    old = Browser(c)
    old.token = before
    me = old.whoami()
    assert (me["user_id"], me["new"]) == (None, True)
    me = b.whoami(max="300")
    assert (me["user_id"], me["recent"], me["auth_at"]) == ("alice", True, T0 + 301)
    rotated = c.events.of("rotated")
    assert [(e.user_id, e.detail.get("reason")) for e in rotated] == [("alice", None)]


def test_reauthenticate_needs_a_user(kind: str, store: CountingStore,
                                     make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store)
    b = Browser(c)
    b.go("/set", k="a", v="1")
    me = b.whoami()
    assert (me["user_id"], me["recent"], me["auth_at"]) == (None, False, None)
    r = b.go("/reauth")
    assert r.status == 409 and "reauthenticate() needs a signed-in user" in r.json
    assert r.token is None


# ---- point 4: periodic renewal --------------------------------------------------------------


def test_renewal_with_grace_for_a_lost_response(kind: str, store: CountingStore,
                                                make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, **RENEW)
    b = Browser(c)
    b.login("alice")
    first = b.token
    c.clock.advance(899)
    assert b.go("/set", k="a", v="0").token is None  # not due yet
    c.clock.advance(1)
    r = b.go("/set", k="a", v="1")
    renewed = r.token
    assert renewed and renewed != first
    (rotated,) = c.events.of("rotated")
    assert (rotated.user_id, rotated.detail.get("reason")) == ("alice", "renewal")
    now = c.clock()
    assert not alive(store, first, now) and alive(store, renewed, now)

    # The renewal's response is lost: the client still sends the old token, within grace.
    c.clock.advance(10)
    lost = Browser(c)
    lost.token = first
    r = lost.go("/set", k="b", v="2")
    assert r.status == 200 and r.token == renewed  # handed the current token again
    assert _as(c, first).whoami()["public_id"] == b.whoami()["public_id"]  # the same session
    assert b.go("/all").json == {"a": "1", "b": "2"}  # the write landed in the renewed session
    assert b.whoami()["user_id"] == "alice"
    assert len(c.events.of("rotated")) == 1  # following the alias is not another renewal

    # After the grace window the old token leads nowhere.
    c.clock.advance(21)  # 31 s after the renewal
    me = _as(c, first).whoami()
    assert (me["user_id"], me["new"]) == (None, True)
    assert b.whoami()["user_id"] == "alice"


def _as(c: LClient, token: str | None) -> Browser:
    b = Browser(c)
    b.token = token
    return b


@pytest.fixture
def renewing(kind: str, store: CountingStore, make_client: Callable[..., LClient]) -> LClient:
    return make_client(kind, store, **RENEW)


def test_renewal_every_interval_and_anonymous_too(renewing: LClient) -> None:
    c = renewing
    anon = Browser(c)
    anon.go("/set", k="cart", v="1")
    user = Browser(c)
    user.login("alice")
    seen = {anon.token, user.token}
    for _ in range(3):
        c.clock.advance(900)
        for b in (anon, user):
            r = b.go("/all")
            assert r.token and r.token not in seen
            seen.add(r.token)
    assert anon.go("/all").json == {"cart": "1"}
    assert user.whoami()["user_id"] == "alice"
    assert len(c.events.of("rotated")) == 6


def test_in_flight_request_during_renewal(renewing: LClient, store: CountingStore) -> None:
    """A request that loaded the session before another one renewed it saves into the renewed
    session and is handed the new token."""
    c = renewing
    b = Browser(c)
    b.login("alice")
    first = b.token
    c.clock.advance(900)
    slow = b.submit("/slow", k="slow", v="1")
    try:
        assert c.gate.reached.wait(WAIT)
        r = b.go("/set", k="fast", v="1")
        assert r.token and r.token != first
    finally:
        c.gate.release.set()
    late = slow.result(WAIT)
    assert late.status == 200 and late.json == {"user_id": "alice"}
    assert late.token == b.token  # the in-flight request learns the current token
    assert b.go("/all").json == {"fast": "1", "slow": "1"}
    assert len(c.events.of("rotated")) == 1
    assert store.kinds().count("Rename") == 1  # the one renewal (the login created)


def test_login_rotation_has_no_grace(renewing: LClient) -> None:
    c = renewing
    b = Browser(c)
    b.go("/set", k="cart", v="1")
    anonymous = b.token
    b.login("alice")
    me = _as(c, anonymous).whoami()
    assert (me["user_id"], me["new"], me["keys"]) == (None, True, [])
    assert b.go("/all").json == {"cart": "1"}

    # Renewed anonymous session (alias A -> B), then a login from B: A never reaches it.
    c2 = Browser(c)
    c2.go("/set", k="x", v="1")
    a = c2.token
    c.clock.advance(900)
    c2.go("/all")
    assert c2.token != a
    c2.login("bob")
    me = _as(c, a).whoami()  # within the renewal's grace window, yet nothing
    assert (me["user_id"], me["new"]) == (None, True)
    assert c2.whoami()["user_id"] == "bob"


def test_no_grace_when_grace_is_zero(kind: str, store: CountingStore,
                                     make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, rotate_interval=900, renew_grace=0)
    b = Browser(c)
    b.login("alice")
    first = b.token
    c.clock.advance(900)
    b.go("/all")
    assert b.token != first
    assert _as(c, first).whoami()["user_id"] is None
    assert store.kinds().count("Create") == 1  # the login's session; no alias was written


# ---- races ----------------------------------------------------------------------------------

N = 10


def test_renewal_racing_parallel_requests(renewing: LClient, store: CountingStore) -> None:
    """N requests carrying the old token meet after loading the session (renewal due for all of
    them) and then all write: one renews, none is logged out, no write is lost."""
    c = renewing
    b = Browser(c)
    b.login("alice")
    first = b.token
    c.clock.advance(900)
    c.meet = Rendezvous(N)
    futures = [b.submit("/race", k=f"k{i}", v=str(i)) for i in range(N)]
    results = [f.result(WAIT) for f in futures]
    assert [r.status for r in results] == [200] * N
    assert [r.json for r in results] == [{"user_id": "alice"}] * N
    handed = {r.token for r in results if r.token is not None}
    assert len(handed) == 1 and first not in handed and "" not in handed
    (renewed,) = handed
    b.token = renewed
    assert b.go("/all").json == {f"k{i}": str(i) for i in range(N)}
    assert _as(c, first).go("/all").json == {f"k{i}": str(i) for i in range(N)}  # within grace
    assert store.kinds().count("Rename") == 1  # exactly one renewal (the login created)
    assert len(c.events.of("rotated")) == 1


def _fetch(base: str, path: str, token: str | None) -> tuple[int, list[str], Any]:
    req = urllib.request.Request(base + path)
    if token is not None:
        req.add_header("Cookie", f"{COOKIE}={token}")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:  # loopback only
            status, headers, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    tokens = [v.split(";", 1)[0].split("=", 1)[1] for v in headers.get_all("Set-Cookie") or []]
    return status, tokens, json.loads(body)


@pytest.mark.parametrize("framework", ["wsgi", "flask"])
def test_renewal_race_under_a_threaded_wsgi_server(framework: str, store: CountingStore,
                                                   make_client: Callable[..., LClient]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    c = make_client(framework, store, **RENEW)
    c.meet = Rendezvous(N)
    with threaded_wsgi_server(c.app) as base:
        status, (first,), _ = _fetch(base, "/login?u=alice", None)
        assert status == 200
        c.clock.advance(900)
        with ThreadPoolExecutor(max_workers=N) as pool:
            results = list(pool.map(lambda i: _fetch(base, f"/race?k=k{i}&v={i}", first), range(N)))
        assert [(s, body) for s, _, body in results] == [(200, {"user_id": "alice"})] * N
        handed = {t for _, tokens, _ in results for t in tokens}
        assert len(handed) == 1 and first not in handed and '""' not in handed
        (renewed,) = handed
        assert _fetch(base, "/all", renewed)[2] == {f"k{i}": str(i) for i in range(N)}
    assert store.kinds().count("Rename") == 1


@pytest.mark.parametrize("renewed_first", [False, True])
def test_logout_racing_a_slow_request_with_renewal(renewing: LClient, store: CountingStore,
                                                   renewed_first: bool) -> None:
    """The slow request loaded the session; a logout deletes it meanwhile (after a renewal by a
    third request, or not): the slow request's save never brings the session back."""
    c = renewing
    b = Browser(c)
    b.login("alice")
    first = b.token
    c.clock.advance(900)  # renewal due for everyone who loaded the old copy
    slow = b.submit("/slow", k="slow", v="1")
    try:
        assert c.gate.reached.wait(WAIT)
        if renewed_first:
            r = b.go("/set", k="fast", v="1")
            assert r.token and r.token != first
        r = b.go("/logout")
        assert r.status == 200 and r.token == ""
        assert c.events.kinds()[-1] == "logged_out"
    finally:
        c.gate.release.set()
    late = slow.result(WAIT)
    assert late.status == 200
    assert late.token is None  # no cookie for a dead session
    now = c.clock()
    assert c.manager.devices("alice") == []
    assert not alive(store, first, now)
    for token in {first, b.token} - {None}:
        me = _as(c, token).whoami()
        assert (me["user_id"], me["new"], me["keys"]) == (None, True, [])
    assert "slow" not in repr(c.events.sync_seen)
    assert len(c.events.of("logged_out")) == 1


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_two_app_servers_share_a_store(backend: str, tmp_path: Any,
                                       make_client: Callable[..., LClient]) -> None:
    """Two app instances (two middlewares, two store objects over one database or directory,
    standing for two app servers): a revoke through one is effective on the other at once."""
    url = store_url_for(backend, tmp_path)
    one, two = CountingStore(open_store(url)), CountingStore(open_store(url))
    try:
        for i, kind in enumerate(KINDS):
            other = KINDS[(i + 1) % len(KINDS)]
            a = make_client(kind, one, **RENEW)
            z = make_client(other, two, **RENEW)
            user = f"user{i}"
            b_on_a = Browser(a)
            b_on_a.login(user)
            b_on_z = Browser(z, "198.51.100.7")
            b_on_z.login(user)
            # each server sees the other's sessions and serves them
            assert len(a.manager.devices(user)) == 2
            assert _as(z, b_on_a.token).whoami()["user_id"] == user
            # a revoke through server A (inside a request: "log out my other devices") ...
            assert b_on_a.go("/revoke_others").json == 1
            # ... is effective on server Z at once
            me = b_on_z.whoami()
            assert (me["user_id"], me["new"]) == (None, True)
            # and an admin revoke through Z kills the session A serves
            assert z.manager.revoke_all(user) == 1
            assert b_on_a.whoami()["user_id"] is None
            # a renewal on one server is followed by the other within grace
            b = Browser(a)
            b.login(user)
            old = b.token
            a.clock.advance(900)
            b.go("/all")
            assert b.token != old
            r = _as(z, old).go("/whoami")
            assert r.json["user_id"] == user and r.token == b.token
    finally:
        one.close()
        two.close()
