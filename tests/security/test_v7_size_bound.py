"""Issue 8.12: what ``max_size`` guarantees when requests on one session overlap.

Each request checks its own snapshot plus its own changes against ``max_size``; the store does
not re-check the merged result. So k requests whose load and save overlap, each adding at most
g bytes, can together leave at most ``max_size + (k - 1) * g`` bytes stored. That is the bound
the documentation states (SECURITY.md, the ``max_size`` option), and these tests hold the
library to it: the bound is reached (so the docs do not promise more than the code does) and
never passed, on every embedded store, through the real request flow.

Requirement: OWASP ASVS 5.0 V7 (session data bounded on the server; a client cannot grow its
session without limit). The limit per request still holds at the app's own line
(``SessionTooLarge``), which tests/core/test_session.py covers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkeeper import SessionConfig, Store, open_store
from sessionkeeper.core import codec
from sessionkeeper.core.flow import RequestInfo, SessionFlow
from sessionkeeper.core.session import Session
from sessionkeeper.drivers import run_sync
from sessionkeeper.errors import SessionTooLarge

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4096
K = 5  # overlapping requests
G = 600  # bytes each one adds (one key holding a string)


@pytest.fixture(params=["memory", "sqlite", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/s/db.sqlite",
           "file": f"file://{tmp_path}/files"}[request.param]
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()


def _cookie(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0]
    raise AssertionError(f"no cookie in {headers}")


def _stored_size(store: Store, flow: SessionFlow, cookie: str) -> int:
    token = cookie.split("=", 1)[1]
    state = flow.begin(RequestInfo(cookie=cookie, scheme="https", host="example.com"))
    assert state.token == token
    record = run_sync(flow.load(state), store)
    assert record is not None
    return codec.encoded_size(dict(record.fields))


def test_v7_overlapping_writers_stay_within_the_documented_bound(store: Store) -> None:
    flow = SessionFlow(SessionConfig(max_size=LIMIT))
    info = RequestInfo(scheme="https", host="example.com")
    # A session filled close to the limit: room for one more G-byte key, not two.
    state = flow.begin(info)
    first = flow.open(state)
    first["base"] = "x" * (LIMIT - G - 200)
    cookie = _cookie(run_sync(flow.commit(state, first, 200), store), flow.cookie_name)
    before = _stored_size(store, flow, cookie)
    assert before + G <= LIMIT < before + 2 * G

    # K requests load the same snapshot, each adds its own key: each passes its own check.
    states = [flow.begin(RequestInfo(cookie=cookie, scheme="https", host="example.com")) for _ in range(K)]
    sessions: list[Session] = []
    for st in states:
        record = run_sync(flow.load(st), store)
        sessions.append(flow.open(st, record))
    for i, s in enumerate(sessions):
        s[f"k{i}"] = "y" * (G - len(f"k{i}") - 10)  # encoded: key + quoted string < G bytes
    for st, s in zip(states, sessions, strict=True):
        run_sync(flow.commit(st, s, 200), store)

    after = _stored_size(store, flow, cookie)
    assert after > LIMIT  # the documented overshoot is real: the docs must not claim more
    assert after <= LIMIT + (K - 1) * G  # ... and it never goes past the documented bound

    # The next request sees the merged session and is refused any further growth.
    st = flow.begin(RequestInfo(cookie=cookie, scheme="https", host="example.com"))
    s = flow.open(st, run_sync(flow.load(st), store))
    with pytest.raises(SessionTooLarge):
        s["more"] = "z"


def test_v7_the_bound_is_documented_where_users_read_about_max_size() -> None:
    security = (ROOT / "SECURITY.md").read_text()
    options = (ROOT / "docs" / "options.md").read_text()
    for text in (security, options):
        assert "max_size + (k - 1) * g" in text.replace("\u2212", "-").replace("`", "")
