"""core/expiry.py: the pure decisions behind the expiry endpoints (issue 10)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.core import expiry
from sessionkeeper.core.clock import Timeouts
from sessionkeeper.core.lifecycle import OWN_ABSOLUTE, OWN_IDLE
from sessionkeeper.core.records import Apply, Create, Delete, Delta, Meta, Record, Rename

T = Timeouts(idle=60, absolute=300)


def meta(last_seen: float = 100, created: float = 0, **kw: object) -> Meta:
    return Meta(created_at=created, last_seen=last_seen, expires_at=min(last_seen + 60, created + 300),
                absolute_at=created + 300, **kw)  # type: ignore[arg-type]


def test_v7_3_1_expiry_is_what_the_server_enforces() -> None:
    assert expiry.expiry_of(meta(100), T) == expiry.Expiry(160, 300)
    # a stored expiry written under a longer idle timeout: today's shorter one wins
    longer = Meta(0, 100, 100 + 3600, 300)
    assert expiry.expiry_of(longer, T).idle_at == 160
    # near the absolute limit the idle expiry is capped by it
    assert expiry.expiry_of(meta(280), T) == expiry.Expiry(300, 300)


def test_remembered_session_uses_its_own_limits() -> None:
    m = Meta(0, 100, 100 + 7200, 86400, info={OWN_IDLE: "7200", OWN_ABSOLUTE: "86400"})
    assert expiry.expiry_of(m, T) == expiry.Expiry(7300, 86400)


def test_v7_3_2_extend_slides_idle_never_past_absolute() -> None:
    assert expiry.extended(meta(100), 130, T) == expiry.Expiry(190, 300)
    assert expiry.extended(meta(100), 270, T) == expiry.Expiry(300, 300)


def test_status_body() -> None:
    assert expiry.status_body(None, 5.5, T) == {"active": False, "authenticated": False, "now": 5}
    body = expiry.status_body(meta(100, user_id="u"), 110.7, T)
    assert body == {"active": True, "authenticated": True, "now": 110, "idle_expires_at": 160,
                    "absolute_expires_at": 300, "idle_remaining": 49, "absolute_remaining": 189}
    assert expiry.status_body(meta(100), 500, T)["idle_remaining"] == 0  # never negative


def test_routes() -> None:
    assert expiry.route("/_s", "/_s/status") == "status"
    assert expiry.route("/_s", "/_s/client.js") == "client.js"
    assert expiry.route("/_s", "/_s/nope") is None
    assert expiry.route("/_s", "/_sx/status") is None
    assert expiry.route(None, "/_s/status") is None


def test_unsafe_needs_both_checks() -> None:
    assert expiry.unsafe_allowed(True, "sessionkeeper")
    assert expiry.unsafe_allowed(True, " SessionKeeper ")
    assert not expiry.unsafe_allowed(False, "sessionkeeper")
    assert not expiry.unsafe_allowed(True, None)
    assert not expiry.unsafe_allowed(True, "XMLHttpRequest")


def test_written_meta() -> None:
    m = meta()
    assert expiry.written_meta(Create("k", Record({}, m))) == m
    assert expiry.written_meta(Apply("k", Delta(meta=m), 0)) == m
    assert expiry.written_meta(Rename("a", "b", Delta(meta=m), 0)) == m
    assert expiry.written_meta(Apply("k", Delta(set={"a": "1"}), 0)) is None
    assert expiry.written_meta(Delete("k")) is None


@given(st.floats(0, 1e14), st.floats(0, 1e14))
def test_header_round_trips(a: float, b: float) -> None:
    idle, absolute = sorted((a, b))
    value = expiry.Expiry(idle, absolute).header()
    parsed = expiry.parse_header(value)
    assert parsed is not None
    assert parsed.idle_at == int(idle) and parsed.absolute_at == int(absolute)


@given(st.text(max_size=60))
def test_parse_header_takes_any_text(value: str) -> None:
    parsed = expiry.parse_header(value)
    if parsed is not None:
        assert 0 <= parsed.idle_at <= parsed.absolute_at
        assert expiry.parse_header(parsed.header()) == parsed


@pytest.mark.parametrize("value", ["", "idle=1", "idle=2, absolute=1", "idle=1, idle=1",
                                   "idle=-1, absolute=5", "idle=1.5, absolute=5", "idle=\u0661, absolute=5",
                                   "idle=1, absolute=5, x=1"])
def test_parse_header_refuses(value: str) -> None:
    assert expiry.parse_header(value) is None
