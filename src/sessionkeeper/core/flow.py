"""One request, start to end, as pure decisions. The adapters do the I/O.

1. :meth:`SessionFlow.token` reads the client's token from the Cookie header. Absent,
   repeated, oversized or malformed -> ``None``: no store call will be made for it.
2. The adapter loads ``Load(storage_key(token))`` (eagerly, or lazily on first access) and
   passes the record through :meth:`SessionFlow.check`: expired by the current timeouts ->
   ``None``. Strict mode falls out of this: a client value that the store does not hold
   is never adopted; a new session always gets a new token.
3. After the app, :meth:`SessionFlow.commit` is a generator: it yields store operations, the
   adapter sends each result back, and it returns the response headers to add. Nothing
   changed and no touch due -> it yields nothing and returns no headers.

The drivers in :mod:`sessionkeeper.drivers` run the generator against a store, sync or async.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any, TypeVar

from ..errors import ConfigError
from . import ids
from .config import SessionConfig
from .cookies import read_token
from .records import Apply, Create, Delete, Delta, Load, Meta, Op, Record, Rename
from .session import Session

Headers = list[tuple[str, str]]
S = TypeVar("S", bound=Session)
CommitFlow = Generator[Op, Any, Headers]


class SessionFlow:
    """The per-application request logic, configured once by a :class:`SessionConfig`."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.cookie_name = config.cookie.cookie_name

    # ---- request start -------------------------------------------------------------------

    def token(self, cookie_header: str | None) -> str | None:
        """The well-formed session token the client sent, or ``None``."""
        value = read_token(cookie_header, self.cookie_name)
        if value is None or not ids.is_valid_token(value):
            return None
        return value

    def load_op(self, token: str) -> Load:
        return Load(ids.storage_key(token), self.config.clock())

    def check(self, record: Record | None) -> Record | None:
        """The record if it is alive under the *current* timeouts, else ``None``."""
        if record is None:
            return None
        now = self.config.clock()
        m = record.meta
        t = self.config.timeouts
        if now >= m.expires_at or now >= m.last_seen + t.idle or now >= m.created_at + t.absolute:
            return None
        return record

    def session(
        self,
        record: Record | None = None,
        loader: Callable[[], Record | None] | None = None,
        cls: type[S] = Session,  # type: ignore[assignment]
    ) -> S:
        """A :class:`Session` over a loaded record, or one that calls ``loader`` when used."""
        return cls(
            clock=self.config.clock,
            max_size=self.config.max_size,
            record=record,
            loader=loader,
        )

    # ---- request end ---------------------------------------------------------------------

    def commit(self, token: str | None, session: Session, status: int) -> CommitFlow:
        """Yield the store operations that save ``session``; return headers to add.

        ``token`` is the token the session was loaded under (``None`` if it is new). A 5xx
        status saves nothing: the app failed half-way and its changes may be half-made.
        """
        headers: Headers = []
        # Untouched (never loaded, or loaded eagerly by an async adapter but never used):
        # no write, no touch, no header, so every adapter behaves the same.
        if not session.loaded or not session.accessed or status >= 500:
            return headers
        headers.append(("Vary", "Cookie"))  # the response depends on the session it read
        cookie = self.config.cookie
        now = self.config.clock()
        old_key = None if token is None else ids.storage_key(token)

        if session.destroyed:
            if old_key is not None:
                yield Delete(old_key)
                headers.append(("Set-Cookie", cookie.delete_cookie()))
            if len(session) == 0:
                if old_key is not None:
                    headers.append(("Cache-Control", "no-store"))
                return headers
            # data written after destroy() goes into a brand-new session (fall through)
            if old_key is not None:
                headers.pop()  # the new cookie below replaces the deletion

        record = None if session.destroyed else session.record
        if record is None or old_key is None:
            if len(session) == 0 and session.new_user is None:
                return headers  # nothing worth a session: stay lazy, no cookie
            new_token = self._new_token()
            new_record = Record(session.encoded(), self._new_meta(session, now))
            ok = yield Create(ids.storage_key(new_token), new_record)
            if ok:
                headers += self._cookie_headers(new_token)
            return headers

        meta = record.meta
        if session.rotate:
            new_meta = self._touched(meta, now)
            if session.new_user is not None:
                new_meta = replace(new_meta, user_id=session.new_user[0], auth_at=session.new_user[1])
            new_token = self._new_token()
            ok = yield Rename(old_key, ids.storage_key(new_token), session.delta(new_meta), now)
            if ok:
                headers += self._cookie_headers(new_token)
            return headers

        delta = session.delta()
        if delta.touches_fields or self.config.timeouts.touch_due(meta.last_seen, now):
            delta = replace(delta, meta=self._touched(meta, now))
            ok = yield Apply(old_key, delta, now)
            if ok and cookie.max_age is not None and token is not None:
                headers += self._cookie_headers(token)  # refresh a persistent cookie's age
        return headers

    def _new_token(self) -> str:
        token = self.config.token_factory()
        if not ids.is_valid_token(token):
            # The next request would reject it and silently start a fresh session.
            raise ConfigError(
                "token_factory must return tokens shaped like sessionkeeper.new_token() "
                "(43 base64url characters from 32 random bytes)"
            )
        return token

    def _touched(self, meta: Meta, now: float) -> Meta:
        return replace(
            meta,
            last_seen=now,
            expires_at=self.config.timeouts.expires_at(now, meta.absolute_at),
        )

    def _new_meta(self, session: Session, now: float) -> Meta:
        t = self.config.timeouts
        absolute_at = t.absolute_at(now)
        user_id, auth_at = session.new_user if session.new_user is not None else (None, None)
        return Meta(
            created_at=now,
            last_seen=now,
            expires_at=t.expires_at(now, absolute_at),
            absolute_at=absolute_at,
            user_id=user_id,
            auth_at=auth_at,
        )

    def _cookie_headers(self, token: str) -> Headers:
        return [
            ("Set-Cookie", self.config.cookie.set_cookie(token)),
            ("Cache-Control", "no-store"),
        ]


__all__ = ["CommitFlow", "Delta", "Headers", "SessionFlow"]
