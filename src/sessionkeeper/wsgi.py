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

from .core.config import SessionConfig
from .core.flow import SessionFlow
from .core.records import Record
from .core.session import Session
from .drivers import run_sync
from .errors import StoreUnavailable
from .stores.base import Store

ENVIRON_KEY = "sessionkeeper.session"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_UNAVAILABLE_BODY = b"Session store unavailable; try again shortly.\n"


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
    """Server-side sessions for any WSGI app: ``SessionMiddleware(app, store=..., **options)``."""

    def __init__(
        self, app: WSGIApp, store: Store, config: SessionConfig | None = None, **options: Any
    ) -> None:
        self.app = app
        self.store = store
        self.config = SessionConfig.from_options(config, **options)
        self.flow = SessionFlow(self.config)

    def open(self, environ: dict[str, Any]) -> tuple[str | None, Session]:
        """The token the client sent and a lazily loading session for it."""
        flow = self.flow
        token = flow.token(environ.get("HTTP_COOKIE"))
        if token is None:
            return None, flow.session()
        store = self.store

        def load() -> Record | None:
            return flow.check(store.execute(flow.load_op(token)))

        return token, flow.session(loader=load)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        token, session = self.open(environ)
        environ[ENVIRON_KEY] = session
        started = False

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal started
            if exc_info is None and not started:
                code = int(status.split(None, 1)[0])
                headers = headers + run_sync(self.flow.commit(token, session, code), self.store)
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
            status = self.config.unavailable_status
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Service Unavailable"
            start_response(
                f"{status} {phrase}",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(_UNAVAILABLE_BODY))),
                    ("Retry-After", "1"),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [_UNAVAILABLE_BODY]
