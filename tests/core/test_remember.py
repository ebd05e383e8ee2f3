"""Issue 9.7, core part: "remember me". ``Session.remember()`` gives one session its own idle and
absolute limits, stored with it and enforced on later requests, and a cookie with ``Max-Age``
up to the absolute limit; ``forget()`` returns to the configured limits and a browser-session
cookie. Pure flow with an injected clock, then through ASGI, WSGI and Flask."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sessionkeeper import ConfigError, open_store
from sessionkeeper.core import lifecycle
from sessionkeeper.core.clock import Timeouts
from sessionkeeper.core.records import Apply, Create, ListUser, Meta, Record, Rename
from sessionkeeper.core.session import Session
from sessionkeeper.drivers import run_sync
from tests.adapters.conftest import CountingStore
from tests.lifecycle.conftest import Browser, LClient

from .conftest import T0, FakeClock, Site, set_cookies

DAY = 24 * 3600.0
REMEMBER_IDLE = 14 * DAY  # the config's defaults
REMEMBER_ABSOLUTE = 30 * DAY


def max_age(headers: list[tuple[str, str]]) -> int | None:
    (cookie,) = set_cookies(headers)
    for part in cookie.split("; "):
        if part.startswith("Max-Age="):
            return int(part[len("Max-Age="):])
    return None


def login_remembered(site: Site, **limits: float) -> tuple[str, list[tuple[str, str]]]:
    def app(s: Session) -> None:
        s.login("alice")
        s.remember(**limits)

    token, headers, _ = site.request(None, app)
    assert token is not None
    return token, headers


def whoami(site: Site, token: str | None) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    new, headers, user = site.request(token, lambda s: s.user_id)
    return new, user, headers


# ---- the flow ----------------------------------------------------------------------------------


def test_remember_on_login_sets_max_age_and_stores_the_limits(clock: FakeClock) -> None:
    site = Site(clock)
    token, headers = login_remembered(site)
    assert max_age(headers) == REMEMBER_ABSOLUTE
    record = site.stored(token)
    assert record is not None
    assert lifecycle.own_limits(record.meta) == (REMEMBER_IDLE, REMEMBER_ABSOLUTE)
    assert record.meta.expires_at == T0 + REMEMBER_IDLE
    assert record.meta.absolute_at == T0 + REMEMBER_ABSOLUTE


@pytest.mark.parametrize("order", ["remember_first", "login_first"])
def test_remember_and_login_in_one_request_either_order(clock: FakeClock, order: str) -> None:
    site = Site(clock)
    # an anonymous session first, so the login rotates (Rename) rather than creates
    anon, _, _ = site.request(None, lambda s: s.__setitem__("cart", 1))

    def app(s: Session) -> None:
        if order == "remember_first":
            s.remember()
            s.login("alice")
        else:
            s.login("alice")
            s.remember()

    token, headers, _ = site.request(anon, app)
    assert token is not None and token != anon
    assert max_age(headers) == REMEMBER_ABSOLUTE
    assert any(isinstance(op, Rename) for op in site.ops)
    clock.advance(2 * 3600)  # well past the normal 30-minute idle limit
    _, user, _ = whoami(site, token)
    assert user == "alice"


def test_remembered_session_survives_an_idle_gap_longer_than_the_normal_idle_timeout(
        clock: FakeClock) -> None:
    site = Site(clock)
    token, _ = login_remembered(site)
    plain, _, _ = site.request(None, lambda s: s.login("bob"))
    clock.advance(6 * 3600)  # 6 hours without use: beyond idle (30 min), within absolute (12 h)
    _, user, _ = whoami(site, token)
    assert user == "alice"
    _, other, _ = whoami(site, plain)
    assert other is None  # a normal session died idle


def test_remembered_session_dies_after_its_own_idle_limit(clock: FakeClock) -> None:
    site = Site(clock)
    token, _ = login_remembered(site, idle=3 * DAY, absolute=10 * DAY)
    clock.advance(3 * DAY - 60)
    assert whoami(site, token)[1] == "alice"
    clock.advance(3 * DAY)
    assert whoami(site, token)[1] is None


def test_remembered_session_dies_at_its_absolute_limit_and_max_age_counts_down(clock: FakeClock) -> None:
    site = Site(clock)
    token, _ = login_remembered(site, idle=5 * DAY, absolute=12 * DAY)
    for _ in range(2):
        clock.advance(4 * DAY)
        assert whoami(site, token)[1] == "alice"
    # a rotation hands out a cookie whose Max-Age is what is left of the absolute limit
    token2, headers, _ = site.request(token, lambda s: s.regenerate())
    assert token2 is not None and token2 != token
    assert max_age(headers) == 4 * DAY
    clock.advance(4 * DAY)
    assert whoami(site, token2)[1] is None  # 12 days after remember(): over


def test_forget_returns_to_the_normal_limits_and_a_browser_session_cookie(clock: FakeClock) -> None:
    site = Site(clock)
    token, _ = login_remembered(site)
    clock.advance(3 * DAY)  # older than the normal absolute limit (12 h): forget must not kill it
    assert whoami(site, token)[1] == "alice"
    _, headers, _ = site.request(token, lambda s: s.forget())
    assert max_age(headers) is None  # a browser-session cookie now
    record = site.stored(token)
    assert record is not None and lifecycle.own_limits(record.meta) is None
    clock.advance(20 * 60)
    assert whoami(site, token)[1] == "alice"  # alive, under the normal limits from the forget
    clock.advance(31 * 60)
    assert whoami(site, token)[1] is None  # and the normal idle limit applies again


def test_remember_again_with_the_same_limits_changes_nothing(clock: FakeClock) -> None:
    """Flask apps set ``session.permanent = True`` on every request: no write, no cookie, and
    the absolute window does not restart."""
    site = Site(clock)
    token, _ = login_remembered(site)
    clock.advance(5)
    site.ops.clear()
    _, headers, _ = site.request(token, lambda s: s.remember())
    assert set_cookies(headers) == []
    assert not any(isinstance(op, Apply | Rename | Create) for op in site.ops)

    def permanent(s: Session) -> None:
        s.permanent = True

    _, headers, _ = site.request(token, permanent)
    assert set_cookies(headers) == []
    record = site.stored(token)
    assert record is not None and record.meta.absolute_at == T0 + REMEMBER_ABSOLUTE


def test_remember_alone_creates_no_session(clock: FakeClock) -> None:
    site = Site(clock)
    token, headers, _ = site.request(None, lambda s: s.remember())
    assert token is None and set_cookies(headers) == [] and site.ops == []


def test_remember_on_an_existing_session_writes_and_sends_the_cookie(clock: FakeClock) -> None:
    site = Site(clock)
    token, _, _ = site.request(None, lambda s: s.login("alice"))
    clock.advance(10)
    def app(s: Session) -> bool:
        s.remember(idle=DAY, absolute=7 * DAY)
        return s.persistent

    token2, headers, persistent = site.request(token, app)
    assert persistent is True and token2 == token  # same ID: no privilege change
    # the absolute limit counts from the login, not from remember() (ASVS V7.3.2)
    assert max_age(headers) == 7 * DAY - 10
    clock.advance(DAY - 60)
    assert whoami(site, token)[1] == "alice"


def test_logout_drops_remember(clock: FakeClock) -> None:
    site = Site(clock)
    token, _ = login_remembered(site)
    def app(s: Session) -> None:
        s.logout()
        s["flash"] = "bye"

    token2, _, _ = site.request(token, app)
    assert token2 is not None and token2 != token
    record = site.stored(token2)
    assert record is not None and lifecycle.own_limits(record.meta) is None


def test_remembered_sessions_count_for_the_device_list_and_the_cap(clock: FakeClock) -> None:
    """Everything judging a session alive uses its own limits: devices, the per-user cap."""
    site = Site(clock, {"max_sessions_per_user": 1, "on_session_limit": "refuse"})
    login_remembered(site)
    clock.advance(6 * 3600)
    ((_key, meta),) = site.store.execute(ListUser("alice", clock()))
    assert lifecycle.alive(meta, clock(), site.config.timeouts)
    (device,) = run_sync(lifecycle.list_devices("alice", clock(), b"k", None, site.config.timeouts),
                         site.store)
    assert device.last_seen.timestamp() == T0
    token, _, _ = site.request(None, lambda s: s.login("alice"))
    assert token is None  # refused: the remembered session still counts


# ---- the session object and the arithmetic -------------------------------------------------


def test_persistent_and_permanent() -> None:
    meta = Meta(T0, T0, T0 + 60, T0 + 600, user_id="alice", auth_at=T0)
    s = Session(clock=FakeClock(), max_size=1000, record=Record({}, meta))
    assert (s.persistent, s.permanent) == (False, False)
    s.permanent = True
    assert s.persist == (None, None) and s.persistent
    s.permanent = False
    assert not s.persist and not s.persistent
    remembered = lifecycle.with_limits(meta, (60.0, 600.0), Timeouts(), T0)
    s2 = Session(clock=FakeClock(), max_size=1000, record=Record({}, remembered))
    assert s2.persistent and s2.permanent
    s2.forget()
    assert not s2.persistent


@pytest.mark.parametrize(("idle", "absolute"), [(-1, None), (0, None), (None, float("nan")),
                                                ("60", None), (3600, 60)])
def test_remember_refuses_bad_limits(idle: object, absolute: object) -> None:
    s = Session(clock=FakeClock(), max_size=1000)
    with pytest.raises(ConfigError, match="remember"):
        s.remember(idle, absolute)  # type: ignore[arg-type]


def test_limits_arithmetic() -> None:
    default = Timeouts(1800, 43200, None)
    meta = Meta(T0, T0, T0 + 1800, T0 + 43200)
    assert lifecycle.limits(meta, default) is default
    own = lifecycle.with_limits(meta, (3 * DAY, 10 * DAY), default, T0 + 100)
    t = lifecycle.limits(own, default)
    assert (t.idle, t.absolute, t.touch_every) == (3 * DAY, 10 * DAY, 60.0)
    # the absolute window counts from creation (nobody signed in), not from the change of
    # limits (ASVS V7.3.2); idle from now
    assert own.absolute_at == T0 + 10 * DAY and own.expires_at == T0 + 100 + 3 * DAY
    assert lifecycle.window_start(own) == T0
    signed_in = replace(meta, user_id="alice", auth_at=T0 + 50)
    assert lifecycle.with_limits(signed_in, (3 * DAY, 10 * DAY), default, T0 + 100).absolute_at \
        == T0 + 50 + 10 * DAY  # from the authentication
    assert lifecycle.with_limits(own, (3 * DAY, 10 * DAY), default, T0 + 999) is own  # unchanged
    back = lifecycle.with_limits(own, None, default, T0 + 200)
    assert lifecycle.own_limits(back) is None and back.absolute_at == T0 + 200 + 43200
    assert lifecycle.window_start(back) == T0 + 200
    # forget() never moves the end later: near the end, it stays where it was
    late = lifecycle.with_limits(own, None, default, T0 + 10 * DAY - 60)
    assert late.absolute_at == T0 + 10 * DAY
    # and remembering again counts from the sign-in, not from the toggle
    again = lifecycle.with_limits(back, (3 * DAY, 10 * DAY), default, T0 + 5 * DAY)
    assert again.absolute_at == T0 + 10 * DAY and lifecycle.window_start(again) == T0
    # corrupt limits in a stored record fall back to the config's
    bad = Meta(T0, T0, T0 + 1800, T0 + 43200, info={"pi": "nan", "pa": "x"})
    assert lifecycle.limits(bad, default) is default


# ---- every adapter ----------------------------------------------------------------------------


@pytest.fixture
def remembering(request: pytest.FixtureRequest) -> Iterator[LClient]:
    c = LClient(str(request.param), CountingStore(open_store("memory://")), FakeClock(T0))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("remembering", ["asgi", "wsgi", "flask"], indirect=True)
def test_remember_me_in_every_adapter(remembering: LClient) -> None:
    c = remembering
    b = Browser(c)
    r = b.go("/remember", u="alice")
    assert r.status == 200 and r.json is True
    (cookie,) = r.all("set-cookie")
    assert f"Max-Age={int(REMEMBER_ABSOLUTE)}" in cookie
    c.clock.advance(DAY)  # a browser restart and a day away
    me = b.whoami()
    assert (me["user_id"], me["new"]) == ("alice", False)
    assert [d.user_agent for d in c.manager.devices("alice")] == ["Firefox on Linux"]
    r = b.go("/forget")
    assert r.json is False and "Max-Age" not in r.all("set-cookie")[0]


def test_v7_3_2_remember_absolute_is_capped_at_the_option(clock: FakeClock,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """ASVS 5.0 V7.3.2: ``remember(absolute=...)`` longer than ``remember_absolute_timeout`` is
    capped there in every adapter (as Django's ``set_expiry`` is), with one warning naming the
    option to raise."""
    lifecycle._capped_warned = False
    site = Site(clock)
    with caplog.at_level("WARNING", logger="sessionkeeper"):
        token, headers = login_remembered(site, absolute=365 * DAY)
    assert max_age(headers) == REMEMBER_ABSOLUTE
    assert "remember_absolute_timeout" in caplog.text
    record = site.stored(token)
    assert record is not None
    assert lifecycle.own_limits(record.meta) == (REMEMBER_IDLE, REMEMBER_ABSOLUTE)
    assert record.meta.absolute_at == T0 + REMEMBER_ABSOLUTE
