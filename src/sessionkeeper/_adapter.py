"""What every adapter (ASGI, WSGI, Flask, :class:`~sessionkeeper.SessionManager`) does the same
way at construction and on its own answers, kept in one place so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Generator
from importlib.resources import files
from typing import Any, TypeVar

from .core import expiry
from .core.config import SessionConfig
from .core.flow import CommitFlow, RequestState, SessionFlow, csrf_allowed
from .core.records import Meta, Op, Record
from .core.session import Session
from .errors import ConfigError
from .stores.base import Store, open_store

T = TypeVar("T")


def resolve_store(store: object, owner: str) -> Store:
    """``store=`` as given to ``owner``: a :class:`Store`, or a store URL opened with
    :func:`open_store`. Anything else is refused now, naming the option, rather than failing
    on the first request with an ``AttributeError``.

    A store opened here from a URL lives as long as the process (as a module-level
    ``open_store(...)`` would); pass a ``Store`` to control when it is closed.
    """
    if isinstance(store, Store):
        return store
    if isinstance(store, str):
        return open_store(store)
    raise ConfigError(
        f"{owner}: store= must be a Store (from open_store(...)) or a store URL string such as "
        f"'sqlite:///sessions.db', not {type(store).__name__}"
    )


def resolve_config(config: object, owner: str) -> SessionConfig | None:
    """``config=`` as given to ``owner``: a :class:`SessionConfig` or ``None``."""
    if config is None or isinstance(config, SessionConfig):
        return config
    raise ConfigError(
        f"{owner}: config= must be a SessionConfig or None, not {type(config).__name__}; "
        "pass options such as secure=False as keyword arguments instead"
    )


def own_answer_headers(config: SessionConfig) -> list[tuple[str, str]]:
    """Headers the middleware's *own* answers (the CSRF 403, the store-unavailable 503) carry
    besides their content headers.

    With the URL transport the token is in the page's address, so every response, these
    included, says ``Referrer-Policy: no-referrer``: otherwise a link or subresource on an
    error page would leak the address, token and all, in the ``Referer`` header (WSTG-SESS-04,
    ASVS 5.0 V7 token exposure). The flow adds the same header to the app's responses.
    """
    if config.transport == "url":
        return [("Referrer-Policy", "no-referrer")]
    return []


# ---- expiry endpoints and the Session-Expires header (issue 10) -------------------------------
# The decisions are pure (core/expiry.py); the request logic is written once here as generators
# of store operations, run by the sync driver (WSGI, Flask) or the async one (ASGI).

Answer = tuple[int, list[tuple[str, str]], bytes]
_STATIC_TYPES = {"client.js": "text/javascript; charset=utf-8", "client.css": "text/css; charset=utf-8"}
_static_cache: dict[str, bytes] = {}


def static_file(name: str) -> bytes:
    """The bytes of a browser asset shipped in ``sessionkeeper/static`` (read once)."""
    data = _static_cache.get(name)
    if data is None:
        data = (files("sessionkeeper") / "static" / name.replace("client.", "sessionkeeper.")).read_bytes()
        _static_cache[name] = data
    return data


def observed(flow: Generator[Op, Any, T], seen: list[tuple[Op, Any]]) -> Generator[Op, Any, T]:
    """``flow`` unchanged, with every operation and its result noted in ``seen``."""
    try:
        op = next(flow)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    while True:
        result = yield op
        seen.append((op, result))
        try:
            op = flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def _saved_meta(seen: list[tuple[Op, Any]]) -> Meta | None:
    """The metadata the request's save wrote last (only writes that succeeded)."""
    found = None
    for op, result in seen:
        meta = expiry.written_meta(op)
        if meta is not None and result:
            found = meta
    return found


def commit(flow: SessionFlow, state: RequestState, session: Session, status: int) -> CommitFlow:
    """:meth:`SessionFlow.commit`, plus, when ``expiry_endpoints`` is on, the
    ``Session-Expires`` header on a response of a request that read a live session: the
    expiry as this request left it (as written, or as loaded if nothing was written)."""
    if flow.config.expiry_endpoints is None:
        return (yield from flow.commit(state, session, status))
    seen: list[tuple[Op, Any]] = []
    headers = yield from observed(flow.commit(state, session, status), seen)
    if status >= 500 or not session.loaded or not session.accessed:
        return headers
    meta = _saved_meta(seen)
    if meta is None and not session.destroyed:
        record = session.record
        meta = None if record is None else record.meta
    if meta is not None:
        headers.append((expiry.HEADER, expiry.expiry_of(meta, flow.config.timeouts).header()))
    return headers


def expiry_answer(
    flow: SessionFlow, state: RequestState, endpoint: expiry.Endpoint, requested_with: str | None,
) -> Generator[Op, Any, Answer]:
    """Answer one expiry endpoint (``state`` from :meth:`SessionFlow.begin` of the request).

    The status endpoint only loads (never ``commit``): no touch, no write, no cookie. Extend
    saves the session with a forced touch through the ordinary save (so renewal, "remember
    me" cookies and events work as on any request); end signs out the same way."""
    cfg = flow.config
    method = state.info.method
    allowed = expiry.METHODS[endpoint]
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        return _json(405, {"error": f"use {allowed}"}, [("Allow", allowed)])
    if endpoint in _STATIC_TYPES:
        data = static_file(endpoint)
        return 200, [("Content-Type", _STATIC_TYPES[endpoint]), ("Content-Length", str(len(data))),
                     ("Cache-Control", "public, max-age=3600"),
                     ("X-Content-Type-Options", "nosniff")], data
    if endpoint != "status":
        same_origin = csrf_allowed(state.info, tuple(cfg.trusted_origins))
        if not expiry.unsafe_allowed(same_origin, requested_with):
            return _json(403, {"error": "cross-site request refused; send "
                                        f"{expiry.REQUESTED_WITH_HEADER}: {expiry.REQUESTED_WITH}"})
    record: Record | None = None
    if state.token is not None:
        record = yield from flow.load(state)
    if endpoint == "status" or record is None:
        return _json(200, expiry.status_body(None if record is None else record.meta,
                                            cfg.clock(), cfg.timeouts))
    session: Session = flow.open(state, record)
    if endpoint == "end":
        session.logout()
        headers = yield from flow.commit(state, session, 200)
        return _json(200, expiry.status_body(None, cfg.clock(), cfg.timeouts), headers)
    state.force_write = True  # a touch, even if the throttle would skip it
    seen: list[tuple[Op, Any]] = []
    headers = yield from observed(flow.commit(state, session, 200), seen)
    meta = _saved_meta(seen)
    body = expiry.status_body(meta, cfg.clock(), cfg.timeouts)
    if meta is not None:
        headers.append((expiry.HEADER, expiry.expiry_of(meta, cfg.timeouts).header()))
    return _json(200, body, headers)


def _json(status: int, body: dict[str, Any], extra: list[tuple[str, str]] | None = None) -> Answer:
    data = expiry.json_body(body)
    headers = [*expiry.ANSWER_HEADERS, ("Content-Length", str(len(data)))]
    # the flow's own Cache-Control (with a new cookie) says the same: keep one
    headers += [h for h in extra or [] if h[0] != "Cache-Control"]
    return status, headers, data
