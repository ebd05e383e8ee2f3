"""Client fingerprints, drift rules and the unknown-ID burst monitor (pure)."""

from __future__ import annotations

import pytest

from sessionkeeper.core.fingerprint import Client, drift, ip_prefix, ua_family
from sessionkeeper.core.probing import ProbeMonitor

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_LINUX_NEXT = "Mozilla/5.0 (X11; Linux x86_64; rv:134.0) Gecko/20100101 Firefox/134.0"
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
EDGE_WIN = CHROME_WIN + " Edg/131.0.0.0"
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")


@pytest.mark.parametrize(("ua", "family"), [
    (FIREFOX_LINUX, "Firefox on Linux"),
    (CHROME_WIN, "Chrome on Windows"),
    (EDGE_WIN, "Edge on Windows"),
    (SAFARI_IOS, "Safari on iOS"),
    ("curl/8.5.0", "curl"),
    ("", "unknown"),
    (None, "unknown"),
    ("\x00\xff" * 5000, "other"),
])
def test_ua_family(ua: str | None, family: str) -> None:
    assert ua_family(ua) == family


@pytest.mark.parametrize(("ip", "net"), [
    ("203.0.113.77", "203.0.113.0/24"),
    ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
    ("::ffff:198.51.100.9", "198.51.100.0/24"),
    ("not an ip", "unknown"),
    ("", "unknown"),
    (None, "unknown"),
])
def test_ip_prefix(ip: str | None, net: str) -> None:
    assert ip_prefix(ip) == net


def test_drift_ignores_version_updates_and_same_network() -> None:
    recorded = Client("203.0.113.5", FIREFOX_LINUX).info()
    assert drift(recorded, Client("203.0.113.200", FIREFOX_LINUX_NEXT)) == []


def test_drift_reports_other_browser_and_other_network() -> None:
    recorded = Client("203.0.113.5", FIREFOX_LINUX).info()
    assert drift(recorded, Client("198.51.100.1", FIREFOX_LINUX)) == ["net"]
    assert drift(recorded, Client("203.0.113.5", CHROME_WIN)) == ["ua"]
    assert drift(recorded, Client("198.51.100.1", CHROME_WIN)) == ["ua", "net"]


def test_drift_ignores_unknown_parts() -> None:
    assert drift({}, Client("198.51.100.1", CHROME_WIN)) == []
    recorded = Client(None, None).info()
    assert drift(recorded, Client("198.51.100.1", CHROME_WIN)) == []


def test_probe_monitor_fires_once_per_window_per_network() -> None:
    m = ProbeMonitor(threshold=3, window=10)
    assert [m.note("a", t) for t in (0, 1, 2, 3, 4)] == [False, False, True, False, False]
    assert m.note("b", 4) is False  # another network counts on its own
    assert [m.note("a", t) for t in (10, 11, 12)] == [False, False, True]  # new window


def test_probe_monitor_memory_is_bounded() -> None:
    m = ProbeMonitor(threshold=2, window=60, max_clients=100)
    for i in range(1000):
        m.note(f"net{i}", 0)
    assert len(m._seen) == 100
