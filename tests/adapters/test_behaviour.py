"""Issue 2's behaviours through real ASGI (Starlette), WSGI and Flask calls, on every store
``open_store`` can open: the same app and the same assertions for each adapter."""

from __future__ import annotations

import pytest

from sessionkeeper.core import ids

from .conftest import COOKIE, AppClient, Boom, CountingStore, Resp, UnavailableStore, flask_app

SQL = "' OR '1'='1' --"
VALID_SHAPE = ids.new_token()


def start(client: AppClient, **values: str) -> str:
    """A session holding ``values``; returns its token."""
    token = None
    for k, v in values.items():
        r = client.get(f"/set?k={k}&v={v}", cookie=token)
        token = r.token or token
    assert token
    return token


def write_ops(store: CountingStore) -> list[str]:
    return [k for k in store.kinds() if k != "Load"]


# ---- cookies and headers (behaviour 7) -------------------------------------------------------


def test_first_write_sets_a_secure_host_cookie(client: AppClient, store: CountingStore) -> None:
    r = client.get("/set?k=a&v=1")
    assert r.status == 200
    (cookie,) = r.all("set-cookie")
    name_value, *attrs = [p.strip() for p in cookie.split(";")]
    name, token = name_value.split("=", 1)
    assert name == COOKIE and ids.is_valid_token(token)
    assert sorted(attrs) == ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"]  # no Max-Age, no Domain
    assert r.one("cache-control") == "no-store"
    assert "Cookie" in [v.strip() for vary in r.all("vary") for v in vary.split(",")]
    assert store.kinds() == ["Create"]
    assert client.get("/all", cookie=token).json == {"a": "1"}


def test_options_reach_the_cookie(kind: str, store: CountingStore) -> None:
    client = AppClient(kind, store, secure=False, cookie_name="sid", same_site="strict", cookie_max_age=600)
    r = client.get("/set?k=a&v=1")
    (cookie,) = r.all("set-cookie")
    assert cookie.startswith("sid=")
    assert sorted(p.strip() for p in cookie.split(";")[1:]) == ["HttpOnly", "Max-Age=600", "Path=/",
                                                               "SameSite=Strict"]


def test_read_varies_but_sets_no_cookie(client: AppClient, store: CountingStore) -> None:
    token = start(client, a="1")
    store.reset()
    r = client.get("/all", cookie=token)
    assert r.json == {"a": "1"}
    assert r.all("set-cookie") == [] and r.one("cache-control") is None
    assert "Cookie" in r.all("vary")
    assert store.kinds() == ["Load"]  # no write: a touch is not due yet


def test_untouched_request_costs_nothing(client: AppClient, store: CountingStore) -> None:
    r = client.get("/untouched")
    assert (r.status, r.all("set-cookie"), r.all("vary"), store.kinds()) == (200, [], [], [])


def test_untouched_request_with_a_cookie_writes_nothing(kind: str, client: AppClient,
                                                          store: CountingStore) -> None:
    token = start(client, a="1")
    store.reset()
    r = client.get("/untouched", cookie=token)
    assert r.all("set-cookie") == [] and r.all("vary") == []
    # WSGI and Flask load lazily; ASGI loads up front (request.session is synchronous).
    assert store.kinds() == (["Load"] if kind == "asgi" else [])


def test_reading_an_empty_session_creates_nothing(client: AppClient, store: CountingStore) -> None:
    r = client.get("/all")
    assert r.json == {} and r.all("set-cookie") == [] and store.kinds() == []


# ---- writes (behaviour 4) ----------------------------------------------------------------------


def test_change_writes_only_that_key_in_one_op(client: AppClient, store: CountingStore) -> None:
    token = start(client, a="1", b="2")
    store.reset()
    r = client.get("/set?k=b&v=20", cookie=token)
    assert r.all("set-cookie") == []
    assert store.kinds() == ["Load", "Apply"]
    assert store.ops[1].delta.set == {"b": '"20"'}  # type: ignore[union-attr]
    assert client.get("/all", cookie=token).json == {"a": "1", "b": "20"}


def test_same_value_is_not_a_write(client: AppClient, store: CountingStore) -> None:
    token = start(client, a="1")
    store.reset()
    client.get("/set?k=a&v=1", cookie=token)
    assert store.kinds() == ["Load"]


def test_nested_mutation_is_saved(client: AppClient) -> None:
    token = start(client, x="1")
    client.get("/append?k=cart&v=apple", cookie=token)
    client.get("/append?k=cart&v=pear", cookie=token)
    assert client.get("/all", cookie=token).json == {"x": "1", "cart": ["apple", "pear"]}


# ---- lifecycle ---------------------------------------------------------------------------------


def test_login_rotates_and_records_the_user(client: AppClient, store: CountingStore) -> None:
    old = start(client, cart="1")
    r = client.get("/login?u=alice", cookie=old)
    new = r.token
    assert new and new != old and r.one("cache-control") == "no-store"
    assert client.get("/user", cookie=new).json == {"user_id": "alice"}
    assert client.get("/all", cookie=new).json == {"cart": "1"}
    assert client.get("/all", cookie=old).json == {}  # the old ID died at once


def test_regenerate_keeps_data(client: AppClient) -> None:
    old = start(client, a="1")
    new = client.get("/regenerate", cookie=old).token
    assert new and new != old
    assert client.get("/all", cookie=new).json == {"a": "1"}
    assert client.get("/all", cookie=old).json == {}


def test_logout_deletes_and_expires_the_cookie(client: AppClient, store: CountingStore) -> None:
    token = client.get("/login?u=bob").token
    assert token
    store.reset()
    r = client.get("/logout", cookie=token)
    (cookie,) = r.all("set-cookie")
    assert cookie.startswith(f'{COOKIE}=""') and "Max-Age=0" in cookie and "Path=/" in cookie
    assert r.one("cache-control") == "no-store"
    assert store.kinds() == ["Load", "Delete"]
    assert client.get("/user", cookie=token).json == {"user_id": None}


# ---- strict mode (behaviour 2) and bad input (behaviour 9) ---------------------------------------


def test_unknown_well_formed_token_is_not_adopted(client: AppClient, store: CountingStore) -> None:
    stranger = ids.new_token()
    r = client.get("/set?k=a&v=1", cookie=stranger)
    assert r.token and r.token != stranger
    assert client.get("/all", cookie=stranger).json == {}
    assert client.get("/all", cookie=r.token).json == {"a": "1"}


BAD = {
    "empty": "",
    "huge": "A" * 5000,
    "non-ascii": "é" * 43,
    "nul": VALID_SHAPE[:20] + "\x00" + VALID_SHAPE[21:],
    "traversal": ("../" * 15)[:42] + "A",
    "traversal-short": "../../../etc/passwd",
    "sql": (SQL * 3)[:42] + "A",
    "sql-short": SQL,
    "too-short": VALID_SHAPE[:-1],
    "too-long": VALID_SHAPE + "A",
    "padding-bits": VALID_SHAPE[:-1] + "B",
}


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_bad_cookie_values_get_a_fresh_session(kind: str, store: CountingStore, value: str) -> None:
    client = AppClient(kind, store)
    r = client.get("/all", raw_cookie=f"{COOKIE}={value}")
    assert (r.status, r.json) == (200, {})
    assert store.ops == []  # never reached the store
    r = client.get("/set?k=a&v=1", raw_cookie=f"{COOKIE}={value}")
    assert r.status == 200 and r.token and r.token != value
    assert store.kinds() == ["Create"]


def test_two_session_cookies_mean_no_session(client: AppClient, store: CountingStore) -> None:
    real = start(client, a="1")
    store.reset()
    for header in (f"{COOKIE}={real}; {COOKIE}={real}", f"{COOKIE}={ids.new_token()}; {COOKIE}={real}"):
        r = client.get("/all", raw_cookie=header)
        assert (r.status, r.json) == (200, {})
    assert store.ops == []


def test_cookie_of_another_name_is_ignored(client: AppClient, store: CountingStore) -> None:
    real = start(client, a="1")
    store.reset()
    assert client.get("/all", raw_cookie=f"session={real}; x{COOKIE}={real}").json == {}
    assert store.ops == []


# ---- failures (behaviour 11) and unavailable stores ------------------------------------------------


def test_5xx_writes_nothing(client: AppClient, store: CountingStore) -> None:
    token = start(client, a="1")
    store.reset()
    r = client.get("/fail", cookie=token)
    assert r.status == 500 and r.all("set-cookie") == []
    assert write_ops(store) == []
    r = client.get("/fail")
    assert r.status == 500 and r.all("set-cookie") == [] and write_ops(store) == []
    assert client.get("/all", cookie=token).json == {"a": "1"}


def test_exception_writes_nothing(client: AppClient, store: CountingStore) -> None:
    token = start(client, a="1")
    store.reset()
    for cookie in (token, None):
        try:
            r: Resp | None = client.get("/raise", cookie=cookie)
        except Boom:
            r = None  # raw WSGI and Starlette re-raise; Flask answers 500
        if r is not None:
            assert r.status == 500 and r.all("set-cookie") == []
    assert write_ops(store) == []
    assert client.get("/all", cookie=token).json == {"a": "1"}


@pytest.mark.parametrize("failing", ["Load", "Create", "Apply"])
def test_store_unavailable_is_503_with_retry_after(kind: str, store: CountingStore, failing: str) -> None:
    token = start(AppClient(kind, store), a="1")
    client = AppClient(kind, UnavailableStore(store, [failing]))
    r = client.get("/set?k=a&v=2", cookie=None if failing == "Create" else token)
    assert r.status == 503
    assert r.one("retry-after") == "1" and r.one("cache-control") == "no-store"
    assert r.all("set-cookie") == []


def test_store_unavailable_on_untouched_requests_is_harmless(kind: str, store: CountingStore) -> None:
    client = AppClient(kind, UnavailableStore(store))
    assert client.get("/untouched").status == 200


# ---- Flask specifics that need the shared store -------------------------------------------------


def test_flask_app_has_no_secret_key(store: CountingStore) -> None:
    assert flask_app(store).secret_key is None
