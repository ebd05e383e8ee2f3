"""The WSGI middleware through raw WSGI calls: environ["sessionkeeper.session"], lazy loading,
generator apps, exc_info, and closing the app's iterable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import create_environ

from sessionkeeper import wsgi
from sessionkeeper.core import ids

from .conftest import COOKIE, Boom, CountingStore, UnavailableStore


class Started:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.calls.append((status, headers, exc_info))
        return lambda data: None

    @property
    def status(self) -> str:
        return self.calls[-1][0]

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.calls[-1][1] if k.lower() == name.lower()]


def run(app: Any, cookie: str | None = None) -> tuple[Started, bytes]:
    environ = create_environ("/")
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    start = Started()
    result = app(environ, start)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return start, body


def plain(action: Callable[[Any], Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        result = action(environ[wsgi.ENVIRON_KEY])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(result).encode()]

    return app


def generator(action: Callable[[Any], Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        result = action(environ[wsgi.ENVIRON_KEY])  # runs on first iteration, not at call time
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a:"
        yield repr(result).encode()

    return app


def cookie_of(start: Started) -> str:
    (value,) = start.header("Set-Cookie")
    return value.split(";", 1)[0]


@pytest.mark.parametrize("shape", [plain, generator])
def test_session_in_environ(store: CountingStore, shape: Any) -> None:
    start, _ = run(wsgi.SessionMiddleware(shape(lambda s: s.update(k="v")), store=store))
    cookie = cookie_of(start)
    assert start.header("Cache-Control") == ["no-store"] and start.header("Vary") == ["Cookie"]
    start, body = run(wsgi.SessionMiddleware(shape(lambda s: dict(s)), store=store), cookie)
    assert body.endswith(b"{'k': 'v'}") and start.header("Set-Cookie") == []


@pytest.mark.parametrize("shape", [plain, generator])
@pytest.mark.parametrize("failing", ["Load", "Create"])
def test_store_down_is_503_for_every_app_shape(store: CountingStore, shape: Any, failing: str) -> None:
    start, _ = run(wsgi.SessionMiddleware(plain(lambda s: s.update(k="v")), store=store))
    cookie = cookie_of(start) if failing == "Load" else None
    app = wsgi.SessionMiddleware(shape(lambda s: s.update(k="w")), store=UnavailableStore(store, [failing]))
    start, body = run(app, cookie)
    assert start.status == "503 Service Unavailable"
    assert start.header("Retry-After") == ["1"] and start.header("Set-Cookie") == []
    assert body == b"Session store unavailable; try again shortly.\n"
    assert len(start.calls) == 1  # the app's own start_response never reached the server


def test_generator_body_is_kept_whole_and_closed(store: CountingStore) -> None:
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        try:
            yield b""  # allowed before start_response
            environ[wsgi.ENVIRON_KEY]["k"] = 1
            start_response("200 OK", [])
            yield b"one,"
            yield b"two"
        finally:
            closed.append(True)

    _, body = run(wsgi.SessionMiddleware(app, store=store))
    assert body == b"one,two" and closed == [True]
    assert store.kinds() == ["Create"]


def test_close_reaches_the_app_iterable(store: CountingStore) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    run(wsgi.SessionMiddleware(app, store=store))
    assert closed == [True]


def test_exc_info_restart_saves_nothing(store: CountingStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[wsgi.ENVIRON_KEY]["k"] = 1
        try:
            raise Boom
        except Boom:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error"]

    start, _ = run(wsgi.SessionMiddleware(app, store=store))
    assert start.header("Set-Cookie") == [] and store.ops == []


def test_exception_propagates_and_saves_nothing(store: CountingStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[wsgi.ENVIRON_KEY]["k"] = 1
        raise Boom

    with pytest.raises(Boom):
        run(wsgi.SessionMiddleware(app, store=store))
    assert store.ops == []


def test_lazy_load_happens_on_first_touch(store: CountingStore) -> None:
    start, _ = run(wsgi.SessionMiddleware(plain(lambda s: s.update(k="v")), store=store))
    cookie = cookie_of(start)
    store.reset()
    seen: list[list[str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(store.kinds())
        value = environ[wsgi.ENVIRON_KEY].get("k")
        seen.append(store.kinds())
        start_response("200 OK", [])
        return [value.encode()]

    _, body = run(wsgi.SessionMiddleware(app, store=store), cookie)
    assert body == b"v" and seen == [[], ["Load"]]


@pytest.mark.parametrize(
    "value",
    ["", "\x00", "Ã©" * 22, "\xff" * 43, "A" * 5000, "../" * 14 + "A", "1' OR '1'='1" + "A" * 31],
)
def test_raw_bad_environ_values_never_reach_the_store(store: CountingStore, value: str) -> None:
    start, body = run(wsgi.SessionMiddleware(plain(lambda s: dict(s)), store=store), f"{COOKIE}={value}")
    assert start.status == "200 OK" and body == b"{}" and store.ops == []


def test_unknown_token_through_raw_wsgi(store: CountingStore) -> None:
    stranger = ids.new_token()
    app = wsgi.SessionMiddleware(plain(lambda s: s.update(a=1)), store=store)
    start, _ = run(app, f"{COOKIE}={stranger}")
    assert stranger not in cookie_of(start)
    assert store.kinds() == ["Load", "Create"]
    assert store.ops[1].key != ids.storage_key(stranger)  # type: ignore[union-attr]
