"""Deferred loading for ASGI (``SessionMiddleware(..., deferred=True)``): the session is put in
the scope *unloaded*, and the app awaits its load where it needs it
(:func:`load_session`, or the FastAPI dependency in :mod:`sessionkeeper.fastapi`).

Rules:

- A request that never awaits the load costs no store call, cookie or not; one that does costs
  the one load, through the store's *async* face (the event loop is never blocked); the save
  after the response is async as in every ASGI mode.
- Using the session before its load was awaited raises :class:`~sessionkeeper.SessionError`
  (saying what to do), with or without a cookie, so an app that works in a test without a
  cookie does not start blocking (or failing) once its users carry one. Nothing is then
  saved for it: a session that was never loaded is neither written nor touched.
- After the load, the same object is an ordinary :class:`~sessionkeeper.Session`:
  ``request.session`` and ``get_session(request)`` see the loaded data, synchronously.

The load itself is the flow's own (:meth:`SessionFlow.load`, the same generator every adapter
runs); the session is opened with :meth:`SessionFlow.open`'s ``run=`` hook, which here hands
back the record the async driver already fetched, so identification (storage key, public id)
happens exactly as on the other paths.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

from .core.flow import LoadFlow, RequestState, SessionFlow
from .core.records import Record
from .core.session import Session
from .drivers import run_async
from .errors import SessionError
from .stores.base import Store

_NOT_LOADED = (
    "the session was used before it was loaded: with SessionMiddleware(deferred=True) the "
    "session is fetched only when the app asks for it, without blocking the event loop. "
    "Declare it in the route (FastAPI: `session: SessionDep` or "
    "`session: Session = Depends(get_session_async)` from sessionkeeper.fastapi), or "
    "`await sessionkeeper.asgi.load_session(request)` before using request.session"
)


class _Pending:
    """What the awaited load needs: the flow, this request's state and the store."""

    __slots__ = ("flow", "record", "state", "store")

    def __init__(self, flow: SessionFlow, state: RequestState, store: Store) -> None:
        self.flow = flow
        self.state = state
        self.store = store
        self.record: Record | None = None

    def hand_over(self, gen: LoadFlow) -> Record | None:
        # The ``run=`` hook of SessionFlow.open: the record was fetched by ``aload`` already;
        # the generator the loader made is dropped unstarted (it has done nothing yet).
        gen.close()
        return self.record


class DeferredSession(Session):
    """A :class:`~sessionkeeper.Session` that refuses use until :meth:`aload` was awaited."""

    _pending: _Pending | None = None

    def _load(self) -> None:
        if self._pending is not None:
            raise SessionError(_NOT_LOADED)
        super()._load()

    @property
    def awaiting_load(self) -> bool:
        """True until :meth:`aload` has been awaited."""
        return self._pending is not None

    async def aload(self) -> None:
        """Fetch the stored session through the store's async face (once; later calls do
        nothing). Raises :class:`~sessionkeeper.StoreUnavailable` if the store is down, and
        the session then stays unloaded."""
        pending = self._pending
        if pending is None:
            return
        if not self.loaded:  # a token came with the request: one store round trip
            pending.record = await run_async(pending.flow.load(pending.state), pending.store)
        self._pending = None
        # Adopt the record through the flow's loader (and mark the session accessed: the app
        # asked for it, so the response varies with it, as on first access elsewhere).
        super()._load()


def open_deferred(flow: SessionFlow, state: RequestState, store: Store) -> DeferredSession:
    """The request's session, unloaded until :meth:`DeferredSession.aload` is awaited."""
    pending = _Pending(flow, state, store)
    session = flow.open(state, run=pending.hand_over, cls=DeferredSession)
    session._pending = pending
    return session


class _HasScope(Protocol):
    @property
    def scope(self) -> MutableMapping[str, Any]: ...


async def load_session(request: _HasScope | MutableMapping[str, Any]) -> Session:
    """The request's session, loaded without blocking the event loop: ``await
    load_session(request)`` for a Starlette/FastAPI ``Request`` or ``WebSocket``, or a raw
    ASGI scope.

    With ``SessionMiddleware(deferred=True)`` this is what loads the session (one store round
    trip if the request carries a session cookie, none otherwise); in the other modes the
    session is returned as the middleware made it. Raises ``SessionError`` if the middleware
    did not run for this request.
    """
    from .asgi import get_session  # asgi imports this module

    session = get_session(request)
    if isinstance(session, DeferredSession):
        await session.aload()
    return session


__all__ = ["DeferredSession", "load_session", "open_deferred"]
