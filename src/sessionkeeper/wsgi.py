"""WSGI middleware. The session is ``environ["sessionkeeper.session"]``.

The session is fetched lazily: a request whose app never touches the session makes no store
call at all. Changes are saved when the app calls ``start_response`` (so the ``Set-Cookie``
header can still be added); an app that raises before that, or answers 5xx, saves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


class SessionMiddleware:
    """Server-side sessions for any WSGI app: ``SessionMiddleware(app, store=..., **options)``."""

    def __init__(self, app: WSGIApp, store: Store, config: SessionConfig | None = None, **options: Any) -> None:
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

        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            code = int(status.split(None, 1)[0])
            if exc_info is None:
                headers = headers + run_sync(self.flow.commit(token, session, code), self.store)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        except StoreUnavailable:
            body = b"Session store unavailable; try again shortly.\n"
            start_response(
                f"{self.config.unavailable_status} Service Unavailable",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", "1"),
                    ("Cache-Control", "no-store"),
                ],
                None,
            )
            return [body]
