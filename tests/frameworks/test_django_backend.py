"""``sessionkeeper.django.SessionStore`` on its own: what it guarantees beyond Django's mixin
(hashed keys, per-key deltas, no resurrection, user binding, expiry mapping, settings, the
async methods on the store's async face)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.core.management import call_command
from django.test import override_settings
from hypothesis import example, given
from hypothesis import strategies as st

from sessionkeeper import (
    ConfigError,
    SessionConfig,
    SessionManager,
    SessionTooLarge,
    Store,
    open_store,
    storage_key,
)
from sessionkeeper.core.records import Apply, Count, Op, Rename
from sessionkeeper.django import SessionStore, _limits, _settings_backend
from tests.adapters.conftest import CountingStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(open_store("memory://"))


@pytest.fixture
def backend(store: CountingStore, clock: Clock) -> type[SessionStore]:
    return SessionStore.bind(store, clock=clock)


def saved(backend: type[SessionStore], **data: Any) -> SessionStore:
    s = backend()
    s.update(data)
    s.save()
    return s


# ---- IDs ------------------------------------------------------------------------------------


def test_v7_2_3_keys_are_256_bit_tokens_and_the_store_sees_only_their_hash(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    s = saved(backend, cart=["apple"])
    key = s.session_key
    assert key is not None and len(key) == 43  # 32 random bytes, base64url
    assert store.inner.load(storage_key(key), clock.now) is not None
    assert store.inner.load(key, clock.now) is None
    seen = {getattr(op, "key", None) for op in store.ops} | {getattr(op, "new", None) for op in store.ops}
    assert key not in seen


def test_v7_2_1_a_key_not_shaped_like_a_token_never_reaches_the_store(
    backend: type[SessionStore], store: CountingStore
) -> None:
    """WSTG-SESS-01: a guessed or Django-style 32-character key is never looked up."""
    s = backend("a" * 32)
    assert s.session_key is None
    assert s.load() == {}
    assert not s.exists("a" * 32)
    s.delete("a" * 32)
    assert store.ops == []


# ---- per-key deltas ---------------------------------------------------------------------------


def test_concurrent_saves_of_different_keys_both_survive(backend: type[SessionStore]) -> None:
    s = saved(backend, a=1, b=2, c=3)
    key = s.session_key
    first, second = backend(key), backend(key)
    assert first["a"] == 1 and second["a"] == 1  # both loaded before either saved
    first["a"] = 10
    del first["c"]
    second["b"] = 20
    first.save()
    second.save()
    assert dict(backend(key).items()) == {"a": 10, "b": 20}


def test_save_writes_only_the_changed_keys(backend: type[SessionStore], store: CountingStore) -> None:
    s = saved(backend, a=1, b=2)
    s2 = backend(s.session_key)
    s2["b"] = 3
    store.reset()
    s2.save()
    (apply,) = [op for op in store.ops if isinstance(op, Apply)]
    assert dict(apply.delta.set) == {"b": "3"} and apply.delta.delete == frozenset()


# ---- no resurrection ------------------------------------------------------------------------


def test_v7_4_1_a_session_deleted_meanwhile_is_never_written_back(backend: type[SessionStore]) -> None:
    s = saved(backend, user="x")
    key = s.session_key
    backend(key).delete()
    s["more"] = 1
    with pytest.raises(UpdateError):
        s.save()
    assert not s.exists(key)
    assert backend(key).load() == {}


def test_v7_4_1_cycle_key_of_a_revoked_session_does_not_carry_its_data(backend: type[SessionStore]) -> None:
    s = saved(backend, secret="of the dead session")
    key = s.session_key
    s["written"] = "by this request"
    backend(key).delete()  # revoked elsewhere
    s.cycle_key()
    assert s.session_key not in (None, key)
    assert dict(backend(s.session_key).items()) == {"written": "by this request"}


# ---- rotation and users ---------------------------------------------------------------------


def test_v7_2_4_cycle_key_renames_atomically_and_binds_the_user(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    s = saved(backend, cart=["apple"])
    old = s.session_key
    store.reset()
    s.cycle_key()
    assert [type(op) for op in store.ops] == [Rename]
    assert not s.exists(old)
    s["_auth_user_id"] = "7"
    s.save()
    meta = store.inner.load(storage_key(s.session_key), clock.now).meta  # type: ignore[union-attr]
    assert meta.user_id == "7" and meta.auth_at == clock.now
    assert dict(backend(s.session_key).items()) == {"cart": ["apple"], "_auth_user_id": "7"}


def test_v7_5_2_devices_and_revoke_all_for_django_users(
    backend: type[SessionStore], store: CountingStore
) -> None:
    phone = saved(backend, _auth_user_id="7")
    laptop = saved(backend, _auth_user_id="7")
    saved(backend, _auth_user_id="8")
    manager = SessionManager(store)
    assert len(manager.devices("7")) == 2
    assert manager.revoke_all("7") == 2
    assert backend(phone.session_key).load() == {}
    assert not laptop.exists(laptop.session_key)
    assert len(manager.devices("8")) == 1


def test_logout_flush_deletes_on_the_server(backend: type[SessionStore]) -> None:
    s = saved(backend, _auth_user_id="7")
    key = s.session_key
    s.flush()
    assert s.session_key is None and not s.exists(key)


# ---- expiry ----------------------------------------------------------------------------------


def meta_of(store: Store, s: SessionStore, now: float) -> Any:
    return store.load(storage_key(s.session_key), now).meta  # type: ignore[union-attr]


def test_v7_3_1_idle_timeout_and_read_only_sessions_are_touched(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    s = saved(backend, a=1)
    key = s.session_key
    clock.now += 20 * 60
    reader = backend(key)
    assert reader["a"] == 1
    assert reader.modified  # touch due: Django's middleware will save it
    reader.save()
    assert meta_of(store.inner, reader, clock.now).last_seen == clock.now
    clock.now += 20 * 60  # 40 min after creation, 20 after the touch: alive
    assert backend(key)["a"] == 1
    clock.now += 31 * 60
    gone = backend(key)
    assert gone.load() == {} and gone.session_key is None


def test_v7_3_2_absolute_timeout_even_when_active(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    start = clock.now
    key = saved(backend, a=1).session_key
    ended = None
    for _ in range(31):  # a request every 25 minutes, each changing the session
        clock.now += 25 * 60
        current = backend(key)
        if current.load() == {}:
            ended = clock.now - start
            break
        current["n"] = clock.now
        current.save()
    assert ended is not None and 12 * 3600 <= ended < 12 * 3600 + 25 * 60


def test_set_expiry_seconds_is_the_idle_limit_capped_by_remember_absolute(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    s = backend()
    s.set_expiry(14 * 24 * 3600)  # Django's "remember me"
    s.save()
    meta = meta_of(store.inner, s, clock.now)
    assert meta.expires_at == clock.now + 14 * 24 * 3600
    s.set_expiry(365 * 24 * 3600)
    s.save()
    assert meta_of(store.inner, s, clock.now).expires_at == clock.now + 30 * 24 * 3600


def test_set_expiry_date_is_a_fixed_end(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    from datetime import datetime, timezone

    s = backend()
    end = datetime.fromtimestamp(clock.now + 3 * 3600, tz=timezone.utc)
    s.set_expiry(end)
    s.save()
    assert meta_of(store.inner, s, clock.now).expires_at == end.timestamp()
    clock.now += 3 * 3600 - 1  # idle for almost 3 hours: a fixed date ignores idleness
    assert backend(s.session_key).exists(s.session_key)
    clock.now += 1
    assert not backend(s.session_key).exists(s.session_key)


def test_set_expiry_zero_keeps_the_configured_limits(
    backend: type[SessionStore], store: CountingStore, clock: Clock
) -> None:
    s = backend()
    s.set_expiry(0)
    s.save()
    assert meta_of(store.inner, s, clock.now).expires_at == clock.now + 30 * 60
    assert s.get_expire_at_browser_close()


def test_clear_expired_and_the_clearsessions_command(store: CountingStore, clock: Clock) -> None:
    backend = SessionStore.bind(store, clock=clock)
    saved(backend, a=1)
    saved(backend, b=2)
    clock.now += 31 * 60
    saved(backend, c=3)
    assert store.inner.execute(Count(0)) == 3
    backend.clear_expired()
    assert store.inner.execute(Count(0)) == 1
    clock.now += 31 * 60
    with override_settings(SESSIONKEEPER={"store": store, "clock": clock}):
        call_command("clearsessions")
    assert store.inner.execute(Count(0)) == 0


# ---- values ----------------------------------------------------------------------------------


def test_values_beyond_django_json_and_size_limit(backend: type[SessionStore]) -> None:
    from datetime import date
    from decimal import Decimal

    s = saved(backend, when=date(2026, 1, 2), price=Decimal("1.10"), pair=(1, 2))
    again = backend(s.session_key)
    assert again["when"] == date(2026, 1, 2) and again["price"] == Decimal("1.10") and again["pair"] == (1, 2)
    small = SessionStore.bind(open_store("memory://"), max_size=100)()
    small["blob"] = "x" * 200
    with pytest.raises(SessionTooLarge):
        small.save()


def test_corrupt_value_is_dropped_and_deleted_on_save(backend: type[SessionStore], store: CountingStore,
                                                       clock: Clock) -> None:
    from sessionkeeper.core.records import Delta

    s = saved(backend, good=1, bad=2)
    store.inner.execute(Apply(storage_key(s.session_key), Delta(set={"bad": "{not json"}), clock.now))
    again = backend(s.session_key)
    assert dict(again.items()) == {"good": 1}
    again["good"] = 2
    again.save()
    record = store.inner.load(storage_key(s.session_key), clock.now)
    assert record is not None and dict(record.fields) == {"good": "2"}


# ---- settings -------------------------------------------------------------------------------


def test_settings_store_url_and_options() -> None:
    with override_settings(SESSIONKEEPER={"store": "memory://", "idle_timeout": 600}):
        b = _settings_backend()
        assert b.store.name == "memory" and b.config.timeouts.idle == 600
        assert b.config.timeouts.absolute == 12 * 3600  # Django's default cookie age is not taken


def test_session_cookie_age_set_by_the_project_is_the_absolute_limit() -> None:
    with override_settings(SESSIONKEEPER={"store": "memory://"}, SESSION_COOKIE_AGE=900):
        t = _settings_backend().config.timeouts
        assert (t.idle, t.absolute) == (900, 900)
    with override_settings(SESSIONKEEPER={"store": "memory://", "absolute_timeout": 7200},
                           SESSION_COOKIE_AGE=900):
        assert _settings_backend().config.timeouts.absolute == 7200


@pytest.mark.parametrize(("option", "names"), [
    ("secure", "SESSION_COOKIE_SECURE"),
    ("cookie_name", "SESSION_COOKIE_NAME"),
    ("csrf", "CsrfViewMiddleware"),
])
def test_options_django_decides_are_refused_with_the_setting_to_use(option: str, names: str) -> None:
    with override_settings(SESSIONKEEPER={"store": "memory://", option: True}), \
            pytest.raises(ConfigError, match=names):
        _settings_backend()


def test_missing_store_says_what_to_add() -> None:
    with override_settings(SESSIONKEEPER=None), pytest.raises(ConfigError, match="SESSIONKEEPER = "):
        SessionStore().load()


# ---- async: the same generators on the store's async face --------------------------------------


class AsyncOnly(Store):
    """A store whose sync face must not be used, and which records the thread of each call."""

    name = "async-only"

    def __init__(self) -> None:
        self.inner = open_store("memory://")
        self.threads: set[int] = set()

    def execute(self, op: Op) -> Any:
        raise AssertionError(f"sync face used for {type(op).__name__}")

    async def aexecute(self, op: Op) -> Any:
        self.threads.add(threading.get_ident())
        return self.inner.execute(op)


def test_async_methods_use_the_async_face_in_the_loop_thread() -> None:
    store = AsyncOnly()
    backend = SessionStore.bind(store)

    async def main() -> int:
        s = backend()
        await s.aset("a", 1)
        await s.asave()
        key = s.session_key
        assert await s.aexists(key)
        other = backend(key)
        assert await other.aget("a") == 1
        await other.aset_expiry(timedelta(hours=1))
        await other.asave()
        await other.acycle_key()
        assert not await other.aexists(key)
        await backend.aclear_expired()
        await other.aflush()
        assert not await other.aexists(key)
        with pytest.raises(UpdateError):
            await s.asave()  # deleted by the other's cycle + flush
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert store.threads == {loop_thread}


# ---- the same on every kind of store -------------------------------------------------------------

STORES = ["memory", "sqlite", "postgres", "redis"]


@pytest.fixture(params=STORES)
def real_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    from tests.stores.backends import memory, postgres, redis, sqlite

    module = {"memory": memory, "sqlite": sqlite, "postgres": postgres, "redis": redis}[request.param]
    with module.open(request.param, tmp_path) as store:
        yield store


def test_v7_5_2_sign_in_binds_the_user_and_revocation_ends_it_on_every_store(real_store: Store) -> None:
    """WSTG-SESS-06: a revoked Django session is gone for every later request and save."""
    backend = SessionStore.bind(real_store)
    s = saved(backend, cart=["apple"])
    s.cycle_key()  # django.contrib.auth.login()
    s["_auth_user_id"] = "7"
    s.save()
    devices = SessionManager(real_store).devices("7")
    assert len(devices) == 1
    assert SessionManager(real_store).revoke_all("7") == 1
    s["late"] = 1
    with pytest.raises(UpdateError):
        s.save()
    assert backend(s.session_key).load() == {}


def test_concurrent_saves_keep_both_keys_on_every_store(real_store: Store) -> None:
    backend = SessionStore.bind(real_store)
    key = saved(backend, a=1, b=2).session_key
    first, second = backend(key), backend(key)
    first.load(), second.load()
    first["a"] = 10
    second["b"] = 20
    first.save()
    second.save()
    assert dict(backend(key).items()) == {"a": 10, "b": 20}


def test_v3_3_1_insecure_cookie_setting_is_explained_once(caplog: pytest.LogCaptureFixture) -> None:
    """WSTG-SESS-02 (cookie attributes): Django defaults SESSION_COOKIE_SECURE to False; the
    engine says what to set."""
    with caplog.at_level("WARNING", logger="sessionkeeper"), \
            override_settings(SESSIONKEEPER={"store": "memory://"}, SESSION_COOKIE_SECURE=False):
        _settings_backend()
        _settings_backend()
    warnings = [r.getMessage() for r in caplog.records if "SESSION_COOKIE_SECURE" in r.getMessage()]
    assert len(warnings) == 1 and "SESSION_COOKIE_SECURE = True" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="sessionkeeper"), \
            override_settings(SESSIONKEEPER={"store": "memory://"}, SESSION_COOKIE_SECURE=True):
        _settings_backend()
    assert not caplog.records


# ---- set_expiry's stored value is parsed: any value keeps the limits bounded -----------------------


EXPIRY_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.datetimes().map(lambda d: d.isoformat()),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(EXPIRY_VALUES, st.floats(min_value=0, max_value=4e9))
@example(float("nan"), 0.0)
@example(float("inf"), 0.0)
@example("9999-12-31T23:59:59", 0.0)
def test_any_stored_expiry_keeps_the_session_within_the_longest_limit(expiry: Any, created: float) -> None:
    cfg = SessionConfig()
    longest = 30 * 24 * 3600  # remember_absolute_timeout, above absolute_timeout
    idle, absolute_at = _limits(cfg, expiry, created)
    assert idle == idle and absolute_at == absolute_at  # never NaN: every comparison would be False
    assert idle <= longest or idle == float("inf")  # inf: a fixed end date, no idle limit
    assert absolute_at <= created + longest
