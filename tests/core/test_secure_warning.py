"""Issue 9.1: a ``Secure`` cookie set in answer to plain HTTP for a host that is not loopback is
dropped by the browser (every request then starts a new session, silently). The flow logs one
warning per process on logger ``sessionkeeper`` saying so, with the fixes; not for loopback
hosts (browsers accept Secure cookies there), not over HTTPS, not with ``secure=False``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import open_store
from sessionkeeper.asgi import SessionMiddleware as ASGISessions
from sessionkeeper.core import flow as flow_module
from sessionkeeper.core.flow import RequestInfo, host_name, is_loopback_host, warn_insecure_cookie
from sessionkeeper.core.session import Session
from sessionkeeper.wsgi import ENVIRON_KEY
from sessionkeeper.wsgi import SessionMiddleware as WSGISessions

from .conftest import FakeClock, Site, drive


@pytest.fixture(autouse=True)
def fresh_warning() -> Iterator[None]:
    flow_module.reset_insecure_cookie_warning()
    yield
    flow_module.reset_insecure_cookie_warning()


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sessionkeeper" and "Secure" in r.getMessage()]


def write(s: Session) -> None:
    s["visits"] = s.get("visits", 0) + 1


def request(site: Site, host: str | None, scheme: str) -> None:
    state = site.flow.begin(RequestInfo(host=host, scheme=scheme))
    session: Session = site.flow.open(state, None)
    write(session)
    drive(site.flow.commit(state, session, 200), site.store.execute)


def test_warns_once_per_process_with_the_fixes(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    site = Site(clock)
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        for _ in range(3):
            request(site, "testserver", "http")
        request(Site(clock), "app.example.com:8000", "http")  # another app, same process: once
    (record,) = warnings(caplog)
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    for needed in ("'testserver'", "drop the cookie", "every request starts a new session", "HTTPS",
                   "--proxy-headers", "ProxyFix", "secure=False",
                   'TestClient(app, base_url="https://testserver")'):
        assert needed in text, needed
    # "once" can be reset (for tests)
    flow_module.reset_insecure_cookie_warning()
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        request(site, "testserver", "http")
    assert len(warnings(caplog)) == 2


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST.", "app.localhost:5000",
                                  "127.0.0.1", "127.0.0.1:8000", "127.8.9.10", "[::1]", "[::1]:8000",
                                  "[::ffff:127.0.0.1]:80"])
def test_no_warning_for_loopback(clock: FakeClock, caplog: pytest.LogCaptureFixture, host: str) -> None:
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        request(Site(clock), host, "http")
    assert warnings(caplog) == []


@pytest.mark.parametrize(("options", "scheme", "host"), [
    ({}, "https", "example.com"),
    ({"secure": False}, "http", "example.com"),
    ({"transport": "header"}, "http", "example.com"),
    ({}, "http", None),  # no Host header: not a browser
])
def test_no_warning_when_the_cookie_will_be_kept(clock: FakeClock, caplog: pytest.LogCaptureFixture,
                                                 options: dict[str, object], scheme: str,
                                                 host: str | None) -> None:
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        request(Site(clock, options), host, scheme)
    assert warnings(caplog) == []


def test_no_warning_while_no_cookie_is_set(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    site = Site(clock)
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        state = site.flow.begin(RequestInfo(host="example.com", scheme="http"))
        session: Session = site.flow.open(state, None)
        session.get("visits")  # read only: nothing saved, no cookie
        site.flow.commit(state, session, 200).close()
    assert warnings(caplog) == []


def test_warn_insecure_cookie_says_whether_it_logged() -> None:
    assert warn_insecure_cookie(RequestInfo(host="example.com", scheme="http")) is True
    assert warn_insecure_cookie(RequestInfo(host="example.com", scheme="http")) is False


# ---- real adapters -------------------------------------------------------------------------------


async def counter(request: Request) -> PlainTextResponse:
    write(request.session)  # type: ignore[arg-type]
    return PlainTextResponse(str(request.session["visits"]))


def starlette_app() -> ASGISessions:
    return ASGISessions(Starlette(routes=[Route("/", counter)]), store=open_store("memory://"))


# Starlette >= 1.0 asks for httpx2 under its TestClient and warns when it finds httpx.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_starlette_testclient_over_http_warns_and_https_works(caplog: pytest.LogCaptureFixture) -> None:
    """The new user's experience: TestClient's default http://testserver loses the session
    (the cookie is dropped) - now with a warning that names the fix, which works."""
    from starlette.testclient import TestClient

    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        with TestClient(starlette_app()) as client:
            assert [client.get("/").text for _ in range(3)] == ["1", "1", "1"]
        assert len(warnings(caplog)) == 1
        flow_module.reset_insecure_cookie_warning()
        with TestClient(starlette_app(), base_url="https://testserver") as client:
            assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]
        assert len(warnings(caplog)) == 1


def wsgi_app() -> WSGISessions:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        session = environ[ENVIRON_KEY]
        assert isinstance(session, Session)
        write(session)
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [str(session["visits"]).encode()]

    return WSGISessions(app, store=open_store("memory://"))


@pytest.mark.parametrize(("base_url", "warned"), [
    ("http://localhost", False),
    ("http://127.0.0.1:5000", False),
    ("https://example.com", False),
    ("http://example.com", True),
])
def test_wsgi(caplog: pytest.LogCaptureFixture, base_url: str, warned: bool) -> None:
    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        r = WerkzeugClient(wsgi_app()).get("/", base_url=base_url)
    assert r.status_code == 200 and "Secure" in r.headers["Set-Cookie"]
    assert len(warnings(caplog)) == int(warned)


def test_asgi_through_httpx_for_a_loopback_host(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    async def go() -> int:
        transport = httpx.ASGITransport(app=starlette_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as c:
            return (await c.get("/")).status_code

    with caplog.at_level(logging.WARNING, "sessionkeeper"):
        assert asyncio.run(go()) == 200
    assert warnings(caplog) == []


# ---- parsing the Host header -------------------------------------------------------------------

ports = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), ports)
def test_every_127_address_is_loopback(a: int, b: int, c: int, port: str) -> None:
    assert is_loopback_host(f"127.{a}.{b}.{c}{port}")


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,3}",
                     fullmatch=True), ports)
def test_names_parse_and_only_localhost_is_loopback(name: str, port: str) -> None:
    assert host_name(f"{name.upper()}{port}") == name
    assert is_loopback_host(f"{name}{port}") == (name == "localhost" or name.endswith(".localhost")
                                                 or _is_127(name))
    assert is_loopback_host(f"{name}.localhost{port}")


def _is_127(name: str) -> bool:
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 and
                                                         (p == "0" or not p.startswith("0")) for p in parts)


@given(st.ip_addresses(v=6), ports)
def test_ipv6_in_brackets(addr: object, port: str) -> None:
    import ipaddress

    assert isinstance(addr, ipaddress.IPv6Address)
    host = f"[{addr}]{port}"
    assert host_name(host) == str(addr)
    mapped = addr.ipv4_mapped
    expected = addr.is_loopback or (mapped is not None and mapped.is_loopback)
    assert is_loopback_host(host) == expected


@given(st.text(max_size=40))
def test_any_host_header_is_handled(host: str) -> None:
    assert isinstance(is_loopback_host(host), bool)  # never raises
