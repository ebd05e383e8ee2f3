"""Fixtures for the documentation's snippets (see ``tests/test_docs.py``).

``placeholders(page, tmp)`` fills the names the docs call "your code"; ``CHECKS`` are the
exercises named by ``<!-- snippet: check NAME -->`` markers: each drives the app the block just
defined, as the page says it behaves, through the framework's own test client.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Namespace = dict[str, Any]

#: the one account the docs' ``check_password`` knows
USERNAME, PASSWORD, USER_ID = "alice", "correct horse battery staple", "42"


def check_password(username: str, password: str) -> str | None:
    """The docs' stand-in for the app's own authentication: a user id, or ``None``."""
    return USER_ID if (username, password) == (USERNAME, PASSWORD) else None


def placeholders(page: str, tmp: Path) -> Namespace:
    """Names a page may use without defining them (documented there as "your code")."""
    return {"check_password": check_password}


# ---- checks ----------------------------------------------------------------------------------

Check = Callable[[Namespace, str, Path], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def https_client(app: Any) -> Any:
    """Starlette's TestClient on https, as the secure cookie needs."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url="https://testserver")


def said(response: Any, expected: object, status: int = 200) -> None:
    """Assert a test client's response: its status and its text (str) or JSON (anything else)."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, f"status {response.status_code}, body {text[:500]!r}"
    if isinstance(expected, str):
        assert text == expected, f"body {text[:500]!r}, expected {expected!r}"
    else:
        got = response.json() if callable(response.json) else response.json
        assert got == expected, f"JSON {got!r}, expected {expected!r}"


@check("flask-quickstart")
def flask_quickstart(ns: Namespace, code: str, tmp: Path) -> None:
    client = ns["app"].test_client()
    said(client.post("/login", data={"username": USERNAME, "password": "guess"}),
         "wrong username or password", 401)
    said(client.post("/login", data={"username": USERNAME, "password": PASSWORD}), "welcome")
    said(client.post("/cart", data={"item": "apple"}), "added")
    said(client.post("/cart", data={"item": "pear"}), "added")
    said(client.get("/cart"), {"user": USER_ID, "cart": ["apple", "pear"]})
    said(client.post("/logout"), "bye")
    said(client.get("/cart"), {"user": None, "cart": []})


@check("fastapi-quickstart")
def fastapi_quickstart(ns: Namespace, code: str, tmp: Path) -> None:
    with https_client(ns["app"]) as client:
        said(client.get("/"), {"visits": 1, "user": None})
        said(client.get("/"), {"visits": 2, "user": None})


@check("asgi-counter")
def asgi_counter(ns: Namespace, code: str, tmp: Path) -> None:
    client = https_client(ns["app"])  # no "with": this bare app does not speak lifespan
    said(client.get("/"), "visits: 1\n")
    said(client.get("/"), "visits: 2\n")


@check("wsgi-quickstart")
def wsgi_quickstart(ns: Namespace, code: str, tmp: Path) -> None:
    from werkzeug.test import Client

    client = Client(ns["application"])
    for n in (1, 2, 3):
        said(client.get("/", base_url="https://example.test"), f"visits: {n}\n")


@check("pytest-file")
def pytest_file(ns: Namespace, code: str, tmp: Path) -> None:
    """The block is a whole test module: run it with pytest, as a reader would."""
    folder = tmp / "pytest-snippet"
    folder.mkdir()
    (folder / "test_snippet.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
        cwd=folder, capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout[-3000:]


def set_cookie(response: Any) -> str:
    """The response's one Set-Cookie header (Flask/Werkzeug or httpx response)."""
    headers = response.headers
    values = headers.getlist("Set-Cookie") if hasattr(headers, "getlist") else headers.get_list("set-cookie")
    assert len(values) == 1, f"expected one Set-Cookie, got {values!r}"
    return str(values[0])


@check("flask-config")
def flask_config(ns: Namespace, code: str, tmp: Path) -> None:
    client = ns["app"].test_client()
    first = client.post("/visit")
    said(first, "1")
    cookie = set_cookie(first)
    assert cookie.startswith("__Host-myapp_session="), cookie
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie, f"{attribute} missing from {cookie}"
    said(client.post("/visit"), "2")


@check("flask-remember")
def flask_remember(ns: Namespace, code: str, tmp: Path) -> None:
    form = {"username": USERNAME, "password": PASSWORD}
    plain = ns["app"].test_client().post("/login", data=form)
    said(plain, "welcome")
    assert "Max-Age" not in set_cookie(plain), "a plain login must set a browser-session cookie"
    remembered = ns["app"].test_client().post("/login", data={**form, "remember": "on"})
    said(remembered, "welcome")
    cookie = set_cookie(remembered)
    max_age = int(cookie.split("Max-Age=", 1)[1].split(";", 1)[0])
    assert 7 * 86400 <= max_age <= 30 * 86400, cookie


@check("fastapi-login")
def fastapi_login(ns: Namespace, code: str, tmp: Path) -> None:
    client = https_client(ns["app"])
    said(client.post("/login", json={"username": USERNAME, "password": "guess"}),
         {"detail": "wrong username or password"}, 401)
    said(client.post("/login", json={"username": USERNAME, "password": PASSWORD}), {"user": USER_ID})
    said(client.get("/me"), {"user": USER_ID, "visits": 1})
    said(client.get("/me"), {"user": USER_ID, "visits": 2})
    said(client.post("/logout"), {"user": None})
    said(client.get("/me"), {"user": None, "visits": 1})


@check("fastapi-lifespan")
def fastapi_lifespan(ns: Namespace, code: str, tmp: Path) -> None:
    with https_client(ns["app"]) as client:  # runs the lifespan: ping at start, aclose at the end
        said(client.get("/"), {"visits": 1})
        said(client.get("/"), {"visits": 2})
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["store_seconds"] >= 0, health.text


@check("wsgi-proxyfix")
def wsgi_proxyfix(ns: Namespace, code: str, tmp: Path) -> None:
    from werkzeug.test import Client

    # The proxy speaks https to the browser and http to the app, and says so in X-Forwarded-*.
    client = Client(ns["application"])
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    said(client.get("/", base_url="http://app.internal", headers=proxied), "visits: 1\n")
    said(client.get("/", base_url="http://app.internal", headers=proxied), "visits: 2\n")


@check("options-wsgi")
def options_wsgi(ns: Namespace, code: str, tmp: Path) -> None:
    from werkzeug.test import Client

    response = Client(ns["application"]).get("/", base_url="https://example.test")
    assert response.status_code == 204


@check("dev-insecure")
def dev_insecure(ns: Namespace, code: str, tmp: Path) -> None:
    client = ns["app"].test_client()
    secure = client.get("/")
    said(secure, "1")
    cookie = set_cookie(secure)
    assert cookie.startswith("__Host-session=") and "Secure" in cookie, cookie
    said(client.get("/"), "2")
    # The same block on a development machine: a plain cookie, no Secure, no __Host- prefix.
    old = os.environ.get("MYAPP_INSECURE_COOKIES")
    os.environ["MYAPP_INSECURE_COOKIES"] = "1"
    try:
        dev: Namespace = {"__name__": "docs_snippet_dev"}
        exec(compile(code, "dev-insecure", "exec"), dev)
    finally:
        if old is None:
            del os.environ["MYAPP_INSECURE_COOKIES"]
        else:
            os.environ["MYAPP_INSECURE_COOKIES"] = old
    response = dev["app"].test_client().get("/")
    cookie = set_cookie(response)
    assert cookie.startswith("session=") and "Secure" not in cookie, cookie


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")


@check("account-devices")
def account_devices(ns: Namespace, code: str, tmp: Path) -> None:
    form = {"username": USERNAME, "password": PASSWORD}
    laptop, phone = ns["app"].test_client(), ns["app"].test_client()
    laptop.environ_base["HTTP_USER_AGENT"] = FIREFOX
    phone.environ_base["HTTP_USER_AGENT"] = CHROME
    said(laptop.post("/login", data=form), "welcome")
    said(phone.post("/login", data=form), "welcome")
    listed = laptop.get("/account/devices").json["devices"]
    assert len(listed) == 2, listed
    assert sorted(d["current"] for d in listed) == [False, True]
    assert {d["user_agent"] for d in listed} == {"Firefox on Linux", "Chrome on Windows"}, listed
    other = next(d for d in listed if not d["current"])
    said(laptop.post(f"/account/devices/{other['session_id']}/revoke"), "revoked")
    said(laptop.post(f"/account/devices/{other['session_id']}/revoke"), "no such device", 404)
    assert phone.get("/account/devices").json == {"devices": []}  # the phone is signed out
    said(phone.post("/login", data=form), "welcome")
    said(laptop.post("/account/logout-others"), {"revoked": 1})
    assert len(laptop.get("/account/devices").json["devices"]) == 1


@check("step-up")
def step_up(ns: Namespace, code: str, tmp: Path) -> None:
    now = ns["now"]
    client = ns["app"].test_client()
    said(client.post("/login", data={"username": USERNAME, "password": PASSWORD}), "welcome")
    said(client.post("/account/email", data={"email": "a@example.com"}), "changed")
    now[0] += 301
    said(client.post("/account/email", data={"email": "b@example.com"}), "confirm your password", 403)
    said(client.post("/account/confirm", data={"username": USERNAME, "password": "guess"}),
         "wrong password", 403)
    said(client.post("/account/confirm", data={"username": USERNAME, "password": PASSWORD}), "confirmed")
    said(client.post("/account/email", data={"email": "b@example.com"}), "changed")


@check("events")
def events(ns: Namespace, code: str, tmp: Path) -> None:
    from werkzeug.test import Client

    said(Client(ns["application"]).get("/", base_url="https://example.test"), "signed in")
    kinds = [e.kind for e in ns["seen"]]
    assert "logged_in" in kinds, kinds
    assert all(e.session_id and len(e.session_id) < 43 for e in ns["seen"]), ns["seen"]


def close_async_stores(client: Any, app: Any) -> None:
    """Close, in the test client's own event loop, the async clients of the stores the app's
    middleware opened from URLs (a loop-bound connection left open warns when collected)."""
    from sessionkeeper import Store

    seen: set[int] = set()
    node, stores = app, []
    queue = [node]
    while queue:
        node = queue.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        store = getattr(node, "store", None)
        if isinstance(store, Store):
            stores.append(store)
        queue += [getattr(node, "middleware_stack", None), getattr(node, "app", None)]
    for store in stores:
        client.portal.call(store.aclose)


@check("migrate-flask-session")
def migrate_flask_session(ns: Namespace, code: str, tmp: Path) -> None:
    client = ns["app"].test_client()
    said(client.post("/login"), "welcome")
    said(client.get("/me"), {"user": "42"})


@check("migrate-starsessions")
def migrate_starsessions(ns: Namespace, code: str, tmp: Path) -> None:
    with https_client(ns["app"]) as client:
        said(client.get("/me"), {"user": None})
        said(client.post("/login"), {"ok": True})
        said(client.get("/me"), {"user": "42"})
        close_async_stores(client, ns["app"])


@check("flask-login")
def flask_login(ns: Namespace, code: str, tmp: Path) -> None:
    client = ns["app"].test_client()
    assert client.get("/me").status_code == 401
    before = client.get_cookie("__Host-session")
    said(client.post("/login", data={"username": USERNAME, "password": PASSWORD}), "welcome")
    after = client.get_cookie("__Host-session")
    assert after is not None and (before is None or before.value != after.value)
    said(client.get("/me"), {"user": USER_ID})
    said(client.post("/logout"), "bye")
    assert client.get("/me").status_code == 401
