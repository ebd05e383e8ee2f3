"""Expiry arithmetic with an injected clock, and the options' checks (issue 2, behaviour 8)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from sessionkeeper import ConfigError, SessionConfig
from sessionkeeper.core.clock import Timeouts, seconds


@pytest.mark.parametrize(
    ("value", "expected"), [(1, 1.0), (2.5, 2.5), (timedelta(minutes=30), 1800.0)]
)
def test_seconds_accepts_numbers_and_timedeltas(value: float | timedelta, expected: float) -> None:
    assert seconds(value, "x") == expected


@pytest.mark.parametrize(
    "value", [0, -1, timedelta(0), timedelta(seconds=-5), math.nan, math.inf, True, "60", None]
)
def test_seconds_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match="idle_timeout"):
        seconds(value, "idle_timeout")  # type: ignore[arg-type]


def test_timeouts_arithmetic() -> None:
    t = Timeouts(idle=1800, absolute=43200)
    assert t.touch_every == 60  # a tenth of idle, at most 60 s
    assert Timeouts(idle=100, absolute=1000).touch_every == 10
    assert Timeouts(idle=100, absolute=1000, touch_interval=5).touch_every == 5
    assert t.absolute_at(1000) == 44200
    assert t.expires_at(last_seen=1000, absolute_at=44200) == 2800  # idle first
    assert t.expires_at(last_seen=44000, absolute_at=44200) == 44200  # capped by absolute
    assert not t.touch_due(last_seen=1000, now=1059.9)
    assert t.touch_due(last_seen=1000, now=1060)


def test_config_defaults_are_secure() -> None:
    c = SessionConfig()
    assert (c.timeouts.idle, c.timeouts.absolute) == (1800, 43200)  # NIST SP 800-63B AAL2
    assert c.cookie.cookie_name == "__Host-session"
    cookie = c.cookie
    assert (cookie.secure, cookie.http_only, cookie.same_site, cookie.path) == (True, True, "lax", "/")
    assert c.cookie.max_age is None and c.cookie.domain is None
    assert c.max_size == 64 * 1024


def test_config_accepts_timedeltas() -> None:
    c = SessionConfig(idle_timeout=timedelta(minutes=5), absolute_timeout=timedelta(hours=1))
    assert (c.timeouts.idle, c.timeouts.absolute) == (300, 3600)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_timeout": 100, "absolute_timeout": 50}, "absolute_timeout"),
        ({"idle_timeout": 100, "touch_interval": 100}, "touch_interval"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_size": 1.5}, "max_size"),
        ({"unavailable_status": 404}, "unavailable_status"),
        ({"unavailable_status": "503"}, "unavailable_status"),
        ({"same_site": "sideways"}, "same_site"),
        ({"cookie_name": "bad name"}, "cookie_name"),
    ],
)
def test_config_errors_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionConfig(**options)  # type: ignore[arg-type]


def test_unknown_options_are_named() -> None:
    with pytest.raises(ConfigError, match="idle_timout") as info:
        SessionConfig.from_options(idle_timout=5)
    assert "idle_timeout" in str(info.value)  # the valid names are listed


def test_from_options_overrides_a_config() -> None:
    base = SessionConfig(cookie_name="sid")
    assert SessionConfig.from_options(base) is base
    merged = SessionConfig.from_options(base, secure=False)
    assert (merged.cookie_name, merged.cookie.cookie_name) == ("sid", "sid")


def test_remember_timeouts_defaults_and_touch_rule() -> None:
    config = SessionConfig()
    remember = config.remember_timeouts
    assert (remember.idle, remember.absolute) == (14 * 86400.0, 30 * 86400.0)
    assert remember.touch_every == 60  # same rule as timeouts: a tenth of idle, at most 60 s
    custom = SessionConfig(
        remember_idle_timeout=timedelta(days=1), remember_absolute_timeout=7 * 86400, touch_interval=30
    )
    assert custom.remember_timeouts == Timeouts(86400.0, 7 * 86400.0, 30.0)
    assert custom.timeouts.touch_interval == 30


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"remember_idle_timeout": 0}, "remember_idle_timeout"),
        ({"remember_idle_timeout": "14d"}, "remember_idle_timeout"),
        ({"remember_absolute_timeout": -1}, "remember_absolute_timeout"),
        ({"remember_idle_timeout": 100, "remember_absolute_timeout": 50}, "remember_absolute_timeout"),
        ({"remember_idle_timeout": 100, "touch_interval": 100, "idle_timeout": 1000}, "remember_idle"),
    ],
)
def test_remember_timeouts_are_checked(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SessionConfig(**options)  # type: ignore[arg-type]
