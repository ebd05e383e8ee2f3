"""The OpenTelemetry extra (``sessionkeeper.otel``), read back with the SDK's in-memory reader.

Every count is driven through real WSGI/ASGI middleware calls (and a SessionManager for the
revocation) on the memory and SQLite stores; the attribute check is a security requirement:
metrics travel to dashboards many people read, so no token, storage key, public session id
or user id may appear in any attribute (OWASP ASVS 5.0 V7 / WSTG-SESS: session identifiers
must not leak into logs and telemetry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from werkzeug.test import create_environ

from sessionkeeper import (
    SessionConfig,
    SessionEvent,
    SessionManager,
    Store,
    StoreUnavailable,
    open_store,
    otel,
    wsgi,
)
from sessionkeeper.asgi import SessionMiddleware as AsgiMiddleware
from sessionkeeper.core import ids
from sessionkeeper.core.records import Count, Create, Load, Meta, Op, Record

T0 = 1_700_000_000.0
DURATION = "sessionkeeper.store.operation.duration"
UA_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
UA_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/126.0 Safari/537.36")
# user ids that cannot occur by chance inside an attribute value
ALICE, BOB = "user-alice-7f3a9c", "user-bob-0b21e4"


# ---- reading metrics back -------------------------------------------------------------------


class Metrics:
    """The reader's current data as {metric name: [(attributes, point)]}."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.points: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = reader.get_metrics_data()
        if data is None:
            return
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        self.points.setdefault(metric.name, []).append((dict(point.attributes or {}), point))

    def total(self, name: str, **attrs: str) -> int:
        """Sum of a counter's points whose attributes include ``attrs`` (keys with _ for .)."""
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        out = 0
        for a, p in self.points.get(name, []):
            assert isinstance(p, NumberDataPoint)
            if all(a.get(k) == v for k, v in want.items()):
                out += int(p.value)
        return out

    def histogram_count(self, name: str, **attrs: str) -> int:
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        out = 0
        for a, p in self.points.get(name, []):
            assert isinstance(p, HistogramDataPoint)
            if all(a.get(k) == v for k, v in want.items()):
                out += p.count
        return out

    def attribute_values(self) -> list[str]:
        return [str(v) for pts in self.points.values() for a, _ in pts for v in a.values()]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    mp = MeterProvider(metric_readers=[reader])
    yield mp
    mp.shutdown()


@pytest.fixture(params=["memory", "sqlite"])
def raw_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else "sqlite:///" + quote(str(tmp_path / "s.db"))
    store = open_store(url)
    yield store
    store.close()


# ---- a small WSGI app and a browser-ish client ----------------------------------------------


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ[wsgi.ENVIRON_KEY]
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = b"ok"
    if path == "/set":
        session["n"] = session.get("n", 0) + 1
    elif path == "/login":
        session.login(query["user"])
    elif path == "/logout":
        session.logout()
    elif path == "/destroy":
        session.destroy()
    else:
        body = repr(session.get("n")).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


class Browser:
    """One client: keeps its session cookie, remembers every token it was ever given."""

    seen_tokens: list[str]

    def __init__(self, mw: Any, ua: str = UA_FIREFOX, ip: str = "127.0.0.1") -> None:
        self.mw, self.ua, self.ip = mw, ua, ip
        self.cookie: str | None = None
        self.seen_tokens = []

    def get(self, path: str) -> tuple[str, bytes]:
        target, _, qs = path.partition("?")
        environ = create_environ(target, "https://example.test", query_string=qs)
        environ["HTTP_USER_AGENT"] = self.ua
        environ["REMOTE_ADDR"] = self.ip
        if self.cookie is not None:
            environ["HTTP_COOKIE"] = self.cookie
        status: list[str] = []
        headers: list[tuple[str, str]] = []

        def start(s: str, h: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            status.append(s)
            headers.extend(h)
            return lambda data: None

        body = b"".join(self.mw(environ, start))
        for name, value in headers:
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                token = pair.partition("=")[2]
                if token:
                    self.cookie = pair
                    self.seen_tokens.append(token)
                else:
                    self.cookie = None
        return status[0], body


# ---- the lifecycle, counted -----------------------------------------------------------------


def test_lifecycle_counters_through_wsgi(raw_store: Store, provider: MeterProvider,
                                         reader: InMemoryMetricReader) -> None:
    """Each lifecycle kind lands in its counter, with the store kind and adapter attached."""
    now = [T0]
    events: list[SessionEvent] = []
    store = otel.instrument(raw_store, meter_provider=provider)
    sub = otel.subscriber(meter_provider=provider, store=store, adapter="wsgi")
    config = SessionConfig(
        clock=lambda: now[0], on_event=[sub, events.append], idle_timeout=600,
        max_sessions_per_user=1, on_session_limit="refuse", probe_threshold=3,
        id_secret=b"metrics-test-secret",
    )
    mw = wsgi.SessionMiddleware(app, store=store, config=config)
    browsers: list[Browser] = []

    def browser(**kw: Any) -> Browser:
        b = Browser(mw, **kw)
        browsers.append(b)
        return b

    a = browser()
    a.get("/set")                                # created
    a.get(f"/login?user={ALICE}")                # logged in: rotated (login)
    b = browser()
    b.get("/set")                                # created
    b.get(f"/login?user={ALICE}")                # refused: alice has her 1 session
    a.ua = UA_CHROME
    assert a.get("/get") == ("200 OK", b"1")     # anomaly: another browser (policy: log)
    manager = SessionManager(store, config)
    (device,) = manager.devices(ALICE)
    assert manager.revoke(ALICE, device.session_id)  # revoked
    c = browser()
    c.get("/set")                                # created
    c.get(f"/login?user={BOB}")                  # logged in
    c.get("/logout")                             # destroyed (logout)
    e = browser()
    e.get("/set")                                # created
    e.get("/destroy")                            # destroyed (destroy)
    d = browser()
    d.get("/set")                                # created
    now[0] += 601
    assert d.get("/get") == ("200 OK", b"None")  # expired
    prober = browser(ip="198.51.100.23")
    for _ in range(3):                           # unknown IDs from one network: a probe
        prober.cookie = f"__Host-session={ids.new_token()}"
        prober.get("/get")

    m = Metrics(reader)
    base = {"sessionkeeper__store": raw_store.name, "sessionkeeper__adapter": "wsgi"}
    assert m.total("sessionkeeper.sessions.created", **base) == 5
    assert m.total("sessionkeeper.sessions.rotated", **base, sessionkeeper__reason="login") == 2
    assert m.total("sessionkeeper.logins", **base) == 2
    assert m.total("sessionkeeper.sessions.refused", **base, sessionkeeper__reason="session_limit") == 1
    assert m.total("sessionkeeper.anomalies", **base, sessionkeeper__reason="fingerprint",
                   sessionkeeper__anomaly__policy="log") == 1
    assert m.total("sessionkeeper.sessions.revoked", **base, sessionkeeper__reason="revoked") == 1
    assert m.total("sessionkeeper.sessions.destroyed", **base, sessionkeeper__reason="logout") == 1
    assert m.total("sessionkeeper.sessions.destroyed", **base, sessionkeeper__reason="destroy") == 1
    assert m.total("sessionkeeper.sessions.expired", **base) == 1
    assert m.total("sessionkeeper.probes", **base) == 1
    # the counters agree with the events the library emitted
    kinds = [ev.kind for ev in events]
    assert kinds.count("created") == 5 and kinds.count("expired") == 1 and kinds.count("refused") == 1

    # the store proxy measured the operations the requests made, and nothing failed
    op_names = {a["sessionkeeper.store.operation"] for a, _ in m.points[DURATION]}
    assert {"load", "create", "rename", "apply", "delete", "list_user"} <= op_names
    assert m.histogram_count(DURATION, sessionkeeper__store=raw_store.name,
                             sessionkeeper__store__operation="create") == 5
    assert m.total("sessionkeeper.store.errors") == 0

    _assert_no_secrets(m, browsers, events, [ALICE, BOB])


def _assert_no_secrets(m: Metrics, browsers: list[Browser], events: list[SessionEvent],
                       users: list[str]) -> None:
    """V7 / WSTG-SESS: no attribute value holds a token, storage key, public id or user id."""
    tokens = [t for b in browsers for t in b.seen_tokens]
    secrets = set(tokens) | {ids.storage_key(t) for t in tokens} | set(users)
    secrets |= {ev.session_id for ev in events if ev.session_id} | {ev.user_id for ev in events if ev.user_id}
    secrets |= {v for ev in events for v in ev.detail.values() if len(v) >= 8 and v not in (
        "session_limit", "fingerprint", "unknown_ids")}  # "previous" ids, networks …
    assert tokens and len(secrets) > len(tokens)  # the check has something to look for
    values = m.attribute_values()
    assert values
    leaks = [(v, s) for v in values for s in secrets if s in v]
    assert not leaks


def test_purged_sessions_count_as_expired_and_scan_and_purge_are_timed(
        raw_store: Store, provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    """Sessions a purge removes reach the ``expired`` counter (``reason=purge``) through the
    events SessionManager.purge emits; the proxy times Purge and Scan. No user id, public id or
    key in any attribute (ASVS 5.0 V7 / WSTG-SESS)."""
    store = otel.instrument(raw_store, meter_provider=provider)
    sub = otel.subscriber(meter_provider=provider, store=store, adapter="cron")
    events: list[SessionEvent] = []
    keys = [ids.storage_key(ids.new_token()) for _ in range(4)]
    for i, key in enumerate(keys):
        meta = Meta(T0, T0, T0 + 10 + i, T0 + 3600, user_id=ALICE if i % 2 else BOB)
        assert store.execute(Create(key, Record({"n": "1"}, meta)))
    alias = ids.alias_key(ids.new_token())
    assert store.execute(Create(alias, Record({"to": '"x"'}, Meta(T0, T0, T0 + 5, T0 + 5))))
    assert [k for k, _ in store.scan_all(T0)] == sorted(keys)  # the alias is no session
    manager = SessionManager(store, on_event=[sub, events.append], clock=lambda: T0 + 60)
    assert manager.purge(now=T0 + 60) == 5
    assert [e.kind for e in events] == ["expired"] * 4
    m = Metrics(reader)
    base = {"sessionkeeper__store": raw_store.name, "sessionkeeper__adapter": "cron"}
    assert m.total("sessionkeeper.sessions.expired", **base, sessionkeeper__reason="purge") == 4
    assert m.histogram_count(DURATION, sessionkeeper__store__operation="purge") == 1
    assert m.histogram_count(DURATION, sessionkeeper__store__operation="scan") == 1
    values = m.attribute_values()
    for secret in [*keys, alias, ALICE, BOB, *(e.session_id or "" for e in events)]:
        assert not any(secret in v for v in values)


def test_v7_no_identifier_in_attributes_even_from_app_reasons(provider: MeterProvider,
                                                             reader: InMemoryMetricReader) -> None:
    """ASVS V7 / WSTG-SESS-04: a reason an app passes (free text, or a user or session id by
    mistake) never reaches an attribute; only short lowercase words do."""
    sub = otel.subscriber(meter_provider=provider)
    sub(SessionEvent("revoked", T0, "pubid1234567", ALICE, {"reason": ALICE}))
    sub(SessionEvent("revoked", T0, "pubid1234567", ALICE, {"reason": "pubid1234567"}))
    sub(SessionEvent("revoked", T0, "pubid1234567", ALICE, {"reason": f"Fired {ALICE} on Monday"}))
    sub(SessionEvent("revoked", T0, "pubid1234567", ALICE, {"reason": "Laptop stolen, see ticket 4711"}))
    sub(SessionEvent("revoked", T0, "pubid1234567", ALICE, {"reason": "password_changed"}))
    sub(SessionEvent("anomaly", T0, None, None, {"reason": "unknown_ids", "network": "203.0.113.0/24"}))
    sub(SessionEvent("no-such-kind", T0, "pubid1234567", ALICE, {}))  # type: ignore[arg-type]
    m = Metrics(reader)
    assert m.total("sessionkeeper.sessions.revoked", sessionkeeper__reason="other") == 4
    assert m.total("sessionkeeper.sessions.revoked", sessionkeeper__reason="password_changed") == 1
    assert m.total("sessionkeeper.probes") == 1
    values = m.attribute_values()
    assert not [v for v in values if ALICE in v or "pubid" in v or "203.0.113" in v or "4711" in v]


# ---- the store proxy ------------------------------------------------------------------------


class Down(Store):
    name = "down"

    def execute(self, op: Op) -> Any:
        raise StoreUnavailable("down://: connection refused")


def test_store_errors_counted_by_class(provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    store = otel.instrument(Down(), meter_provider=provider)
    browser = Browser(wsgi.SessionMiddleware(app, store=store))
    browser.cookie = f"__Host-session={ids.new_token()}"
    assert browser.get("/get")[0].startswith("503")
    with pytest.raises(StoreUnavailable):
        store.count(T0)
    m = Metrics(reader)
    err = {"sessionkeeper__store": "down", "error__type": "sessionkeeper.errors.StoreUnavailable"}
    assert m.total("sessionkeeper.store.errors", **err, sessionkeeper__store__operation="load") == 1
    assert m.total("sessionkeeper.store.errors", **err, sessionkeeper__store__operation="count") == 1
    # failed operations are in the latency histogram too, marked with error.type
    assert m.histogram_count(DURATION, **err) == 2


def test_proxy_is_transparent(raw_store: Store, provider: MeterProvider,
                              reader: InMemoryMetricReader) -> None:
    store = otel.instrument(raw_store, meter_provider=provider)
    assert isinstance(store, Store) and store.wrapped is raw_store
    assert store.name == raw_store.name and store.address == raw_store.address
    assert repr(raw_store) in repr(store)
    if raw_store.name == "sqlite":
        assert store.path == raw_store.path  # a backend's own attribute, read through
        assert "path" in dir(store)
    with pytest.raises(AttributeError):
        _ = store.no_such_attribute
    assert store.count(T0) == 0 and store.load("0" * 64, T0) is None
    assert store.ping() >= 0
    assert asyncio.run(store.aping()) >= 0
    m = Metrics(reader)
    assert m.histogram_count(DURATION, sessionkeeper__store__operation="count") == 1
    assert m.histogram_count(DURATION, sessionkeeper__store__operation="load") == 3
    store.close()
    if raw_store.name == "sqlite":  # closed through the proxy: the wrapped store is closed
        with pytest.raises(Exception, match="closed"):
            raw_store.count(T0)


def test_proxy_calls_a_backends_own_convenience_methods(provider: MeterProvider) -> None:
    """A store that overrides a base method (e.g. a smarter purge) keeps it behind the proxy."""

    class Custom(Store):
        name = "custom"

        def execute(self, op: Op) -> Any:
            return 7 if isinstance(op, Count) else None

        def purge(self, now: float, batch: int = 500) -> int:
            return 42

    store = otel.instrument(Custom(), meter_provider=provider)
    assert store.purge(T0) == 42 and store.count(T0) == 7
    assert store.execute(Load("0" * 64, T0)) is None


def test_asgi_async_face_measured(provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    """Through the ASGI middleware the proxy's ``aexecute`` is timed and events counted."""
    store = otel.instrument("memory://", meter_provider=provider)
    sub = otel.subscriber(meter_provider=provider, store="memory", adapter="asgi")

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = AsgiMiddleware(inner, store=store, on_event=[sub])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
             "headers": [], "scheme": "https", "server": ("example.test", 443), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "root_path": ""}
    asyncio.run(mw(scope, receive, send))
    asyncio.run(store.aclose())
    assert sent[0]["status"] == 200
    m = Metrics(reader)
    assert m.total("sessionkeeper.sessions.created", sessionkeeper__adapter="asgi",
                   sessionkeeper__store="memory") == 1
    assert m.histogram_count(DURATION, sessionkeeper__store__operation="create") == 1


def test_without_a_provider_uses_the_global_one() -> None:
    """No meter_provider: the API's global (a no-op until an SDK is installed) - still works."""
    store = otel.instrument("memory://")
    assert store.count(T0) == 0
    otel.subscriber()(SessionEvent("created", T0))
