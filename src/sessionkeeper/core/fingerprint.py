"""A coarse client fingerprint and the rules for when later requests "drift" from it.

Recorded at login: the user-agent *family* (browser and OS, not the version, which changes
with every update) and a coarse network prefix (IPv4 /24, IPv6 /48), so that ordinary
movement — a browser update, DHCP on the same network — is not reported, while a session
cookie replayed from another browser or another network is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

AnomalyPolicy = Literal["ignore", "log", "rotate", "reauthenticate", "revoke"]

_BROWSERS = (  # order matters: Edge and Opera claim to be Chrome, Chrome claims to be Safari
    # crawlers first: they claim to be a browser too
    ("bot", re.compile(r"(?i)\bcompatible; ?[\w.-]*(?:bot|spider|crawler)\b|\b(?:Googlebot|bingbot|"
                       r"Applebot|DuckDuckBot|YandexBot|Baiduspider|facebookexternalhit)/")),
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/|\bOPT/|\bOpera\b")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    # "HeadlessChrome/" has no word boundary before "Chrome/": it used to read as Safari
    ("Chrome (headless)", re.compile(r"\bHeadlessChrome/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/|\bChromium/")),
    ("Safari", re.compile(r"\bSafari/")),
    ("curl", re.compile(r"^curl/")),
    ("python", re.compile(r"python-requests|python-httpx|Python-urllib|aiohttp")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def ua_family(user_agent: str | None) -> str:
    """``"Firefox on Linux"``-style summary of a User-Agent header ("unknown" if empty)."""
    ua = (user_agent or "")[:512]
    if not ua:
        return "unknown"
    browser = next((name for name, rx in _BROWSERS if rx.search(ua)), "other")
    system = next((name for name, rx in _SYSTEMS if rx.search(ua)), "")
    return f"{browser} on {system}" if system else browser


def ip_prefix(ip: str | None) -> str:
    """The client's network: IPv4 /24 or IPv6 /48, as text ("unknown" if unparsable)."""
    if not ip:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


@dataclass(frozen=True, slots=True)
class Client:
    """What a request says about its client (adapters fill it from the scope/environ)."""

    ip: str | None = None
    user_agent: str | None = None

    def info(self) -> dict[str, str]:
        """The fields recorded in a session's metadata (shown in "your devices")."""
        return {
            "ip": (self.ip or "")[:64],
            "ua": ua_family(self.user_agent),
            "net": ip_prefix(self.ip),
        }


def drift(recorded: Mapping[str, str], client: Client) -> list[str]:
    """Which fingerprint parts differ from what was recorded at login ([] when none)."""
    now = client.info()
    changed = []
    for part in ("ua", "net"):
        before = recorded.get(part)
        if before is not None and before != "unknown" and now[part] != "unknown" and before != now[part]:
            changed.append(part)
    return changed
