"""WSTG-SESS-04 / ASVS 5.0 V7 (session token exposure): with the URL transport the token is in
the page's address, so *every* response says ``Referrer-Policy: no-referrer``: also the
middleware's own answers, the CSRF 403 and the store-unavailable 503 (issue 8.10). Without it
a link or image on that error page sends the address, token and all, in ``Referer``.

Each adapter (ASGI through Starlette, plain WSGI, Flask) is called for real; each way the
middleware answers by itself is covered: refused before the app, the store down when the
session loads, and the store down when it saves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import Store, new_token, open_store

from ..adapters.conftest import Resp, UnavailableStore, flask_app, starlette_app, wsgi_app

KINDS = ["asgi", "wsgi", "flask"]


def build(kind: str, store: Store, **options: Any) -> Any:
    return {"asgi": starlette_app, "wsgi": wsgi_app, "flask": flask_app}[kind](store, **options)


def call(kind: str, app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> Resp:
    headers = headers or {}
    if kind == "asgi":
        async def go() -> Resp:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
                r = await client.request(method, path, headers=headers)
            return Resp(r.status_code, [(k.decode().lower(), v.decode()) for k, v in r.headers.raw],
                        r.content)

        return asyncio.run(go())
    r = WerkzeugClient(app, use_cookies=False).open(path, method=method, headers=headers,
                                                   base_url="https://testserver")
    return Resp(r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.get_data())


@pytest.mark.parametrize("kind", KINDS)
def test_wstg_sess_04_csrf_refusal_carries_no_referrer(kind: str) -> None:
    """The CSRF 403 (a cross-site POST with the token in the URL) says no-referrer, once."""
    app = build(kind, open_store("memory://"), transport="url", csrf=True)
    r = call(kind, app, "POST", f"/set?k=a&v=1&sid={new_token()}",
             {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert r.status == 403
    assert r.all("referrer-policy") == ["no-referrer"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("failing", "path"), [
    (("Load",), "/all?sid={token}"),  # the store is down when the session loads
    (("Create", "Apply", "Rename"), "/set?k=a&v=1"),  # ... or when it saves
])
def test_wstg_sess_04_store_unavailable_carries_no_referrer(kind: str, failing: tuple[str, ...],
                                                            path: str) -> None:
    """The store-unavailable 503 says no-referrer, once, whichever step met the outage."""
    store = UnavailableStore(open_store("memory://"), failing=failing)
    app = build(kind, store, transport="url")
    r = call(kind, app, "GET", path.format(token=new_token()))
    assert r.status == 503
    assert r.all("referrer-policy") == ["no-referrer"]
    assert r.all("retry-after") == ["1"]


@pytest.mark.parametrize("kind", KINDS)
def test_wstg_sess_04_app_answers_still_carry_it_once(kind: str) -> None:
    """The app's own answers (the flow adds the header) keep exactly one copy."""
    app = build(kind, open_store("memory://"), transport="url", csrf=True)
    for path in ("/untouched", "/set?k=a&v=1", "/nosuchpage"):
        assert call(kind, app, "GET", path).all("referrer-policy") == ["no-referrer"], path


@pytest.mark.parametrize("kind", KINDS)
def test_cookie_transport_answers_set_no_referrer_policy(kind: str) -> None:
    """The header is the URL transport's: with cookies the app chooses its own policy."""
    app = build(kind, open_store("memory://"), csrf=True)
    r = call(kind, app, "POST", "/set?k=a&v=1", {"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    assert r.all("referrer-policy") == []
