"""Per-request decisions of the pure flow, with plain values and an injected clock
(issue 2, behaviours 2, 3, 4, 6, 7, 8, 11)."""

from __future__ import annotations

import pytest

from sessionkeeper import ConfigError, SessionConfig
from sessionkeeper.core import codec, ids
from sessionkeeper.core.flow import SessionFlow
from sessionkeeper.core.records import Apply, Create, Delete, Meta, Op, Record, Rename

from .conftest import T0, FakeClock, Site, commit, cookie_token, drive, set_cookies

IDLE, ABSOLUTE = 1800.0, 43200.0


def meta(clock: FakeClock, age: float = 0, idle_left: float = IDLE, user: str | None = None) -> Meta:
    now = clock()
    return Meta(created_at=now - age, last_seen=now, expires_at=now + idle_left,
                absolute_at=now - age + ABSOLUTE, user_id=user)


def setup(clock: FakeClock, **options: object) -> SessionFlow:
    return SessionFlow(SessionConfig(clock=clock, **options))  # type: ignore[arg-type]


TOKEN = ids.new_token()
KEY = ids.storage_key(TOKEN)


def loaded(flow: SessionFlow, clock: FakeClock, **values: object):  # type: ignore[no-untyped-def]
    rec = Record({k: codec.encode(k, v) for k, v in values.items()}, meta(clock))
    return flow.session(rec)


# ---- reading the request ----------------------------------------------------------------


def test_token_reads_only_well_formed_single_cookies(clock: FakeClock) -> None:
    flow = setup(clock)
    assert flow.token(f"__Host-session={TOKEN}") == TOKEN
    assert flow.token(f"session={TOKEN}") is None  # not our (prefixed) name
    assert flow.token(f"__Host-session={TOKEN}; __Host-session={TOKEN}") is None
    assert flow.token(f"__Host-session={TOKEN[:-1]}") is None
    assert flow.token(None) is None


def test_load_op_uses_the_hash_and_the_clock(clock: FakeClock) -> None:
    op = setup(clock).load_op(TOKEN)
    assert (op.key, op.now) == (KEY, T0)


def test_check_applies_current_timeouts(clock: FakeClock) -> None:
    flow = setup(clock, idle_timeout=100, absolute_timeout=1000)
    m = Meta(created_at=T0 - 50, last_seen=T0 - 50, expires_at=T0 + 50, absolute_at=T0 + 950)
    assert flow.check(Record({}, m)) is not None
    assert flow.check(None) is None
    # expired by its own expiry
    assert flow.check(Record({}, Meta(T0 - 50, T0 - 50, T0, T0 + 950))) is None
    # idle under today's (shorter) idle timeout, whatever the record says
    assert flow.check(Record({}, Meta(T0 - 150, T0 - 100, T0 + 900, T0 + 850))) is None
    # absolute under today's (shorter) absolute timeout
    assert flow.check(Record({}, Meta(T0 - 1000, T0 - 1, T0 + 99, T0 + 5000))) is None


# ---- committing -------------------------------------------------------------------------


def test_untouched_lazy_session_does_nothing(clock: FakeClock) -> None:
    flow = setup(clock)
    calls = []
    s = flow.session(loader=lambda: calls.append(1))  # type: ignore[arg-type, func-returns-value]
    assert drive(commit(flow, TOKEN, s, 200)) == ([], [])
    assert calls == []


def test_loaded_but_unused_session_does_nothing_even_when_a_touch_is_due(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1)
    clock.advance(600)
    assert drive(commit(flow, TOKEN, s, 200)) == ([], [])


def test_read_only_writes_nothing_but_varies(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1)
    assert s["a"] == 1
    assert drive(commit(flow, TOKEN, s, 200)) == ([], [("Vary", "Cookie")])


def test_reading_an_empty_new_session_creates_nothing(clock: FakeClock) -> None:
    flow = setup(clock)
    s = flow.session()
    assert s.get("a") is None
    assert drive(commit(flow, None, s, 200)) == ([], [("Vary", "Cookie")])


def test_touch_is_throttled(clock: FakeClock) -> None:
    flow = setup(clock, touch_interval=60)
    s = loaded(flow, clock, a=1)
    clock.advance(59)
    assert s["a"] == 1  # a read
    assert drive(commit(flow, TOKEN, s, 200))[0] == []
    clock.advance(1)
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    assert ops == [Apply(KEY, ops[0].delta, T0 + 60)]  # type: ignore[union-attr]
    delta = ops[0].delta  # type: ignore[union-attr]
    assert not delta.touches_fields
    assert delta.meta is not None
    assert (delta.meta.last_seen, delta.meta.expires_at) == (T0 + 60, T0 + 60 + IDLE)
    assert set_cookies(headers) == []


def test_first_write_creates_with_a_new_token(clock: FakeClock) -> None:
    flow = setup(clock)
    s = flow.session()
    s["cart"] = [1]
    ops, headers = drive(commit(flow, None, s, 200))
    token = cookie_token(headers)
    assert ids.is_valid_token(token)
    (op,) = ops
    assert isinstance(op, Create) and op.key == ids.storage_key(token)
    assert op.record.fields == {"cart": "[1]"}
    m = op.record.meta
    assert (m.created_at, m.last_seen, m.expires_at, m.absolute_at) == (T0, T0, T0 + IDLE, T0 + ABSOLUTE)
    assert ("Cache-Control", "no-store") in headers and ("Vary", "Cookie") in headers


def test_change_writes_only_the_changed_keys_in_one_op(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1, b=2, c=3)
    s["a"] = 10
    del s["b"]
    assert s["c"] == 3  # read, unchanged
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    (op,) = ops
    assert isinstance(op, Apply) and op.key == KEY
    assert op.delta.set == {"a": "10"} and op.delta.delete == {"b"}
    assert op.delta.meta is not None and op.delta.meta.last_seen == T0
    assert set_cookies(headers) == []  # the browser's cookie stays as it is


def test_persistent_cookie_is_refreshed_on_write(clock: FakeClock) -> None:
    flow = setup(clock, cookie_max_age=3600)
    s = loaded(flow, clock, a=1)
    s["a"] = 2
    _, headers = drive(commit(flow, TOKEN, s, 200))
    assert cookie_token(headers) == TOKEN and "Max-Age=3600" in set_cookies(headers)[0]
    s2 = loaded(flow, clock, a=1)
    s2["a"] = 2
    _, headers = drive(commit(flow, TOKEN, s2, 200), lambda op: False)  # session gone meanwhile
    assert set_cookies(headers) == []


def test_regenerate_renames(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1)
    s.regenerate()
    s["b"] = 2
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    (op,) = ops
    new = cookie_token(headers)
    assert new != TOKEN
    assert isinstance(op, Rename) and (op.old, op.new) == (KEY, ids.storage_key(new))
    assert op.delta.set == {"b": "2"}
    assert ("Cache-Control", "no-store") in headers


def test_failed_rename_sets_no_cookie(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1)
    s.regenerate()
    _, headers = drive(commit(flow, TOKEN, s, 200), lambda op: False)
    assert set_cookies(headers) == []


@pytest.mark.parametrize("options", [{}, {"secure": False, "cookie_path": "/app", "cookie_name": "sid"}])
def test_destroy_deletes_and_expires_the_cookie(clock: FakeClock, options: dict[str, object]) -> None:
    flow = setup(clock, **options)
    s = loaded(flow, clock, a=1)
    s.destroy()
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    assert ops == [Delete(KEY)]
    (cookie,) = set_cookies(headers)
    assert cookie == flow.config.cookie.delete_cookie()
    assert cookie.startswith(flow.config.cookie.cookie_name + "=")
    assert f"Path={flow.config.cookie.path}" in cookie and "Max-Age=0" in cookie
    assert ("Cache-Control", "no-store") in headers


def test_data_after_destroy_goes_to_a_new_session(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1, user="x")
    s.destroy()
    s["flash"] = "bye"
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    assert [type(op) for op in ops] == [Delete, Create]
    assert ops[0] == Delete(KEY)
    new = cookie_token(headers)  # exactly one Set-Cookie: the new session's
    assert new != TOKEN and ops[1].key == ids.storage_key(new)  # type: ignore[union-attr]
    assert ops[1].record.fields == {"flash": '"bye"'}  # type: ignore[union-attr]
    assert ops[1].record.meta.user_id is None  # type: ignore[union-attr]


def test_login_renames_with_user_and_auth_time(clock: FakeClock) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, cart=[1])
    clock.advance(5)
    s.login("alice")
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    (op,) = ops
    assert isinstance(op, Rename) and op.old == KEY
    assert op.delta.meta is not None
    assert (op.delta.meta.user_id, op.delta.meta.auth_at) == ("alice", T0 + 5)
    assert op.new == ids.storage_key(cookie_token(headers))


def test_login_on_a_new_session_creates_it(clock: FakeClock) -> None:
    flow = setup(clock)
    s = flow.session()
    s.login(7)
    ops, headers = drive(commit(flow, None, s, 200))
    (op,) = ops
    assert isinstance(op, Create) and op.record.meta.user_id == "7" and op.record.meta.auth_at == T0
    assert op.key == ids.storage_key(cookie_token(headers))


@pytest.mark.parametrize("status", [500, 502, 503, 599])
@pytest.mark.parametrize("action", ["set", "destroy", "login", "create"])
def test_5xx_saves_nothing(clock: FakeClock, status: int, action: str) -> None:
    flow = setup(clock)
    s = flow.session() if action == "create" else loaded(flow, clock, a=1)
    clock.advance(600)  # a touch would be due
    if action == "destroy":
        s.destroy()
    elif action == "login":
        s.login("u")
    else:
        s["a"] = 2
    assert drive(commit(flow, None if action == "create" else TOKEN, s, status)) == ([], [])


@pytest.mark.parametrize("status", [200, 302, 404])
def test_other_statuses_save(clock: FakeClock, status: int) -> None:
    flow = setup(clock)
    s = loaded(flow, clock, a=1)
    s["a"] = 2
    assert len(drive(commit(flow, TOKEN, s, status))[0]) == 1


def test_unknown_token_is_never_adopted(clock: FakeClock) -> None:
    """Strict mode: the store does not know the client's token -> a brand-new token."""
    flow = setup(clock)
    s = flow.session(loader=lambda: flow.check(None))
    assert len(s) == 0
    s["x"] = 1
    ops, headers = drive(commit(flow, TOKEN, s, 200))
    (op,) = ops
    assert isinstance(op, Create) and op.key != KEY
    assert cookie_token(headers) != TOKEN


def test_invalid_token_factory_is_a_config_error(clock: FakeClock) -> None:
    flow = setup(clock, token_factory=lambda: "predictable")
    s = flow.session()
    s["x"] = 1
    with pytest.raises(ConfigError, match="token_factory"):
        drive(commit(flow, None, s, 200))


# ---- whole request cycles over a memory store ----------------------------------------------


def test_idle_timeout_slides_with_activity(clock: FakeClock) -> None:
    site = Site(clock)
    token, _, _ = site.request(None, lambda s: s.__setitem__("n", 0))
    assert token is not None
    for i in range(1, 5):  # used every 25 minutes: longer than idle in total, never idle
        clock.advance(IDLE - 300)
        token2, _, seen = site.request(token, lambda s: s.get("n"))
        assert token2 == token and seen == i - 1
        site.request(token, lambda s, i=i: s.__setitem__("n", i))  # type: ignore[misc]
    clock.advance(IDLE)  # then idle for the full timeout
    _, _, seen = site.request(token, lambda s: s.get("n"))
    assert seen is None
    assert site.stored(token) is None


def test_read_only_use_keeps_a_session_alive_through_the_touch(clock: FakeClock) -> None:
    site = Site(clock)
    token, _, _ = site.request(None, lambda s: s.__setitem__("n", 1))
    assert token is not None
    for _ in range(5):
        clock.advance(IDLE - 120)
        assert site.request(token, lambda s: s.get("n"))[2] == 1


def test_absolute_timeout_kills_a_busy_session(clock: FakeClock) -> None:
    site = Site(clock)
    token, _, _ = site.request(None, lambda s: s.__setitem__("n", 1))
    assert token is not None
    used = 0.0
    while used + 600 < ABSOLUTE:
        clock.advance(600)
        used += 600
        assert site.request(token, lambda s: s.get("n"))[2] == 1
    clock.advance(ABSOLUTE - used)  # exactly at the absolute limit
    assert site.request(token, lambda s: s.get("n"))[2] is None


def test_destroyed_session_stays_dead_for_a_slower_request(clock: FakeClock) -> None:
    """No resurrection, at the flow level: a request that loaded before the logout commits after."""
    site = Site(clock)
    token, _, _ = site.request(None, lambda s: s.__setitem__("a", 1))
    assert token is not None
    flow = site.flow
    slow = flow.session(flow.check(site.store.execute(flow.load_op(token))))
    slow["late"] = "write"
    site.request(token, lambda s: s.logout())
    ops: list[Op] = []

    def answer(op: Op) -> object:
        ops.append(op)
        return site.store.execute(op)

    _, headers = drive(commit(flow, token, slow, 200), answer)
    assert [type(op) for op in ops] == [Apply]
    assert site.stored(token) is None and site.store.count(clock()) == 0
    assert set_cookies(headers) == []


def test_touched_meta_keeps_every_field_but_the_two_it_moves() -> None:
    """_touched builds Meta field by field (cheaper than dataclasses.replace on every write):
    a field added to Meta later must not be dropped on the next write."""
    import dataclasses

    flow = SessionFlow(SessionConfig(idle_timeout=600, absolute_timeout=3600))
    values: dict[str, object] = {}
    for n, f in enumerate(dataclasses.fields(Meta)):
        values[f.name] = {"x": "y"} if f.name == "info" else "u" if f.name == "user_id" else 1000.0 + n
    meta = Meta(**values)  # type: ignore[arg-type]
    now = 1500.0
    got = flow._touched(meta, now)
    want = dataclasses.replace(meta, last_seen=now,
                               expires_at=flow._limits(meta).expires_at(now, meta.absolute_at))
    assert got == want
