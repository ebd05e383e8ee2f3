"""ASGI with ``lazy_load=True``: the session is fetched on first access (through the store's
sync face), so a request that carries a cookie but never touches the session costs nothing."""

from __future__ import annotations

from sessionkeeper import open_store

from .conftest import AppClient, CountingStore, UnavailableStore


def test_lazy_asgi_loads_only_when_the_app_touches_the_session(store: CountingStore) -> None:
    app = AppClient("asgi", store, lazy_load=True)
    token = app.get("/set?k=a&v=1").token
    assert token
    store.reset()
    r = app.get("/untouched", cookie=token)
    assert r.status == 200
    assert store.kinds() == []  # eager mode would have loaded it
    assert r.one("vary") is None
    r = app.get("/all", cookie=token)
    assert r.json == {"a": "1"}
    assert store.kinds() == ["Load"]
    store.reset()
    app.get("/set?k=b&v=2", cookie=token)
    assert store.kinds() == ["Load", "Apply"]
    assert app.get("/all", cookie=token).json == {"a": "1", "b": "2"}


def test_eager_asgi_loads_whenever_a_cookie_arrives(store: CountingStore) -> None:
    app = AppClient("asgi", store)
    token = app.get("/set?k=a&v=1").token
    store.reset()
    app.get("/untouched", cookie=token)
    assert store.kinds() == ["Load"]  # and nothing else: unused, so neither written nor touched


def test_lazy_asgi_store_down_on_first_access_is_a_503() -> None:
    inner = open_store("memory://")
    token = AppClient("asgi", inner).get("/set?k=a&v=1").token
    app = AppClient("asgi", UnavailableStore(inner), lazy_load=True)
    assert app.get("/untouched", cookie=token).status == 200  # never asks the store
    r = app.get("/all", cookie=token)
    assert r.status == 503
    assert r.one("retry-after") == "1"
