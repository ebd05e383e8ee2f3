"""Helpers for the pure core's tests: an injected clock and a hand-driven flow."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionkeeper.core import ids
from sessionkeeper.core.config import SessionConfig
from sessionkeeper.core.flow import CommitFlow, RequestInfo, RequestState, SessionFlow
from sessionkeeper.core.records import Op, Record
from sessionkeeper.core.session import Session
from sessionkeeper.stores.memory import MemoryStore

T0 = 1_800_000_000.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def drive(gen: Generator[Op, Any, Any], answer: Callable[[Op], Any] | None = None) -> tuple[list[Op], Any]:
    """Run a flow generator by hand: record each op, answer it (default: success)."""
    ops: list[Op] = []
    try:
        op = next(gen)
        while True:
            ops.append(op)
            op = gen.send(answer(op) if answer else True)
    except StopIteration as stop:
        return ops, stop.value


def commit(flow: SessionFlow, token: str | None, session: Session, status: int = 200) -> CommitFlow:
    """``flow.commit`` for a session that was loaded under ``token`` (by hand, in a test)."""
    state = RequestState(RequestInfo(), token)
    if token is not None and (session._record is not None or session.destroyed):
        session.storage_key = ids.storage_key(token)
    return flow.commit(state, session, status)


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [v for k, v in headers if k == "Set-Cookie"]


def cookie_token(headers: list[tuple[str, str]]) -> str:
    """The token a single ``Set-Cookie`` hands out."""
    (value,) = set_cookies(headers)
    return value.split(";", 1)[0].split("=", 1)[1]


@dataclass
class Site:
    """A whole request cycle over the pure flow and a memory store, with an injected clock:
    what an adapter does, minus HTTP."""

    clock: FakeClock
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = SessionConfig(clock=self.clock, **self.options)
        self.flow = SessionFlow(self.config)
        self.store = MemoryStore()
        self.ops: list[Op] = []
        self.events: list[Any] = []

    def request(
        self, token: str | None, app: Callable[[Session], Any] = lambda s: None, status: int = 200
    ) -> tuple[str | None, list[tuple[str, str]], Any]:
        """Run ``app`` on the session for ``token``; return (token to use next, headers, result)."""
        header = None if token is None else f"{self.config.cookie.cookie_name}={token}"
        state = self.flow.begin(RequestInfo(cookie=header))

        def run(gen: Generator[Op, Any, Any]) -> Any:
            return drive(gen, answer)[1]

        def answer(op: Op) -> Any:
            self.ops.append(op)
            return self.store.execute(op)

        session = self.flow.open(state, run=run)
        result = app(session)
        _, headers = drive(self.flow.commit(state, session, status), answer)
        self.events.extend(state.take_events())
        cookies = set_cookies(headers)
        next_token = token
        if cookies:
            value = cookies[0].split(";", 1)[0].split("=", 1)[1]
            next_token = None if value == '""' else value
        return next_token, headers, result

    def stored(self, token: str) -> Record | None:
        return self.store.load(ids.storage_key(token), self.clock())
