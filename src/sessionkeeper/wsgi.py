"""WSGI middleware. The session is ``environ["sessionkeeper.session"]``.

The session is fetched lazily: a request whose app never touches the session makes no store
call at all. Changes are saved when the app calls ``start_response`` (so the ``Set-Cookie``
header can still be added); an app that raises before that, or answers 5xx, saves nothing.
A store that cannot be reached turns the request into a 503 with ``Retry-After``, also for
apps that call ``start_response`` only once their body is iterated (generator apps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import Any

from ._adapter import commit, expiry_answer, own_answer_headers, resolve_config, resolve_store
from .core import expiry
from .core.config import SessionConfig
from .core.flow import RequestInfo, RequestState, SessionFlow, info_from_headers
from .core.session import Session
from .dispatch import emit_sync
from .drivers import run_sync
from .errors import StoreUnavailable
from .responses import CSRF_REFUSED, UNAVAILABLE
from .stores.base import Store

ENVIRON_KEY = "sessionkeeper.session"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]



class _Resumed:
    """The app's body with its first chunks already taken: yields those, then the rest, and
    closes the app's iterable when the server closes this one (PEP 3333)."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], original: Iterable[bytes]) -> None:
        self._head = head
        self._rest = rest
        self._original = original

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        _close(self._original)


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class SessionMiddleware:
    """Server-side sessions for any WSGI app: ``SessionMiddleware(app, store=..., **options)``.

    ``store`` is a :class:`~sessionkeeper.Store` or a store URL (``"sqlite:///sessions.db"``,
    opened with :func:`~sessionkeeper.open_store`); ``options`` are the fields of
    :class:`~sessionkeeper.SessionConfig`. Wrong types are refused here, not on the first request.
    """

    def __init__(
        self, app: WSGIApp, store: Store | str, config: SessionConfig | None = None, **options: Any
    ) -> None:
        self.app = app
        # options first: a bad option should not leave a store connection open behind it
        self.config = SessionConfig.from_options(resolve_config(config, "SessionMiddleware"), **options)
        self.store = resolve_store(store, "SessionMiddleware")
        self.flow = SessionFlow(self.config)
        self._own = own_answer_headers(self.config)

    def open(self, environ: dict[str, Any]) -> tuple[RequestState, Session]:
        """The request's state and a lazily loading session for it."""
        state = self.flow.begin(request_info(environ, self.config.header_name))
        store = self.store
        return state, self.flow.open(state, run=lambda flow: run_sync(flow, store))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        state, session = self.open(environ)
        try:
            if state.csrf_failed:
                return _plain(start_response, 403, CSRF_REFUSED, self._own)
            if self.config.expiry_endpoints is not None:
                endpoint = expiry.route(self.config.expiry_endpoints, str(environ.get("PATH_INFO") or ""))
                if endpoint is not None:
                    return self._expiry(environ, start_response, state, endpoint)
            environ[ENVIRON_KEY] = session
            return self._call(environ, start_response, state, session)
        finally:
            if state.events:
                emit_sync(self.config.on_event, state.take_events())

    def _expiry(
        self, environ: dict[str, Any], start_response: StartResponse, state: RequestState,
        endpoint: expiry.Endpoint,
    ) -> list[bytes]:
        """Answer an expiry endpoint (``expiry_endpoints``) without running the app."""
        try:
            status, headers, body = run_sync(
                expiry_answer(self.flow, state, endpoint, environ.get("HTTP_X_REQUESTED_WITH")),
                self.store)
        except StoreUnavailable:
            return _plain(start_response, self.config.unavailable_status, UNAVAILABLE,
                          [("Retry-After", "1"), *self._own])
        start_response(f"{status} {HTTPStatus(status).phrase}", [*headers, *self._own])
        return [b"" if state.info.method == "HEAD" else body]

    def _call(
        self, environ: dict[str, Any], start_response: StartResponse, state: RequestState, session: Session
    ) -> Iterable[bytes]:
        started = False

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal started
            if exc_info is None and not started:
                code = int(status.split(None, 1)[0])
                headers = headers + run_sync(commit(self.flow, state, session, code), self.store)
                if state.events:
                    emit_sync(self.config.on_event, state.take_events())
            started = True
            return start_response(status, headers, exc_info)

        result: Iterable[bytes] | None = None
        try:
            result = self.app(environ, start)
            if started:
                return result
            # A generator app starts its response only when iterated; take chunks here until
            # it does, so that a store failure on the way still becomes a clean 503.
            head: list[bytes] = []
            rest = iter(result)
            try:
                for chunk in rest:
                    head.append(chunk)
                    if started:
                        break
            except BaseException:
                _close(result)  # the server never sees it, so it cannot close it
                raise
            return _Resumed(head, rest, result)
        except StoreUnavailable:
            if started:
                raise
            return _plain(start_response, self.config.unavailable_status, UNAVAILABLE,
                          [("Retry-After", "1"), *self._own])


def _plain(
    start_response: StartResponse, status: int, body: bytes, extra: list[tuple[str, str]]
) -> list[bytes]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Service Unavailable"
    start_response(
        f"{status} {phrase}",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ],
    )
    return [body]


# The few request headers the flow reads, by their WSGI environ keys (PEP 3333: HTTP_ and the
# name upper-cased, "-" as "_"). Looked up one by one: a browser sends a dozen or more headers,
# and converting them all cost more than the rest of this function.
_WANTED = (("cookie", "HTTP_COOKIE"), ("host", "HTTP_HOST"), ("user-agent", "HTTP_USER_AGENT"),
           ("origin", "HTTP_ORIGIN"), ("sec-fetch-site", "HTTP_SEC_FETCH_SITE"))


def request_info(environ: dict[str, Any], header_name: str) -> RequestInfo:
    """What the flow needs from a WSGI environ."""
    token = (header_name.lower(), "HTTP_" + header_name.upper().replace("-", "_"))
    headers = {name: str(environ[key]) for name, key in (*_WANTED, token) if key in environ}
    return info_from_headers(
        str(environ.get("REQUEST_METHOD") or "GET"),
        headers,
        query=str(environ.get("QUERY_STRING") or ""),
        ip=environ.get("REMOTE_ADDR"),
        scheme=str(environ.get("wsgi.url_scheme") or "http"),
        header_name=header_name,
    )

