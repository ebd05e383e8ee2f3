"""Cookie policy and parsing: reading our cookie out of a ``Cookie`` header and writing the
``Set-Cookie`` text. Pure functions of strings.

Rules:
- The header is read as RFC 6265bis (section 5.7.4 and the cookie-pair grammar) says: split on
  ``;``, split each pair at its first ``=``, trim only SP and HTAB around the name and the
  value, and compare the name to ours *exactly* (case and every code point). Python's
  ``str.strip()`` must not be used: it also removes NBSP, NEL, ``\x1c``-``\x1f`` and other
  Unicode spaces, and a sibling subdomain could then plant ``\xa0__Host-session=...;
  Domain=<parent>`` — a name browsers do not treat as ``__Host-`` (so they accept the Domain),
  which a trimming server would read as ours (session swapping, or a forced logout when the
  two collide). The adapters hand us the header decoded as latin-1 (ASGI bytes, WSGI environ),
  so every byte is one code point and the comparison is byte-for-byte.
- Only our cookie name is looked at; other cookies, however malformed, are ignored.
- If our name appears more than once (a cookie-tossing attacker on a sibling domain, or a stale
  path-scoped cookie), the request has *no* valid session: we cannot tell which one is ours.
- Values longer than :data:`MAX_VALUE` are ignored without further parsing.
- Secure by default: ``Secure; HttpOnly; SameSite=Lax; Path=/`` and the ``__Host-`` prefix,
  which tells the browser to refuse the cookie unless it came over HTTPS, from this exact
  host, with ``Path=/`` and no ``Domain`` — no subdomain can plant or overwrite it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

MAX_VALUE = 4096
_WSP = " \t"  # RFC 6265bis: the only whitespace trimmed around a cookie's name and value
_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 token
_ATTR_RE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # printable ASCII without ';' (domain, path)

SameSite = Literal["lax", "strict", "none"]


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """How the session cookie is named and which attributes it carries."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    http_only: bool = True
    same_site: SameSite = "lax"
    max_age: int | None = None  # None: a browser-session cookie; expiry is the server's job
    host_prefix: bool = True  # add "__Host-" when secure, path "/" and no domain

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ConfigError(f"cookie_name {self.name!r} is not a valid cookie name")
        for option, value in (("secure", self.secure), ("http_only", self.http_only),
                              ("host_prefix", self.host_prefix)):
            if not isinstance(value, bool):
                raise ConfigError(f"{option} must be True or False, not {value!r}")
        if not isinstance(self.path, str):
            raise ConfigError(f"cookie_path must be a string, not {self.path!r}")
        if self.domain is not None and not isinstance(self.domain, str):
            raise ConfigError(f"cookie_domain must be a string or None, not {self.domain!r}")
        if isinstance(self.same_site, str):
            # Any case is accepted ("Lax" is Flask's and the RFC's spelling); kept lowercase.
            object.__setattr__(self, "same_site", self.same_site.lower())
        if self.same_site not in ("lax", "strict", "none"):
            raise ConfigError(f"same_site must be 'lax', 'strict' or 'none', not {self.same_site!r}")
        if self.same_site == "none" and not self.secure:
            raise ConfigError("same_site='none' requires secure=True (browsers reject it otherwise)")
        if not self.path.startswith("/") or not _ATTR_RE.fullmatch(self.path):
            raise ConfigError(f"cookie_path {self.path!r} must start with '/' and hold no ';'")
        if self.domain is not None and (not self.domain or not _ATTR_RE.fullmatch(self.domain)):
            raise ConfigError(f"cookie_domain {self.domain!r} is not a valid domain")
        if self.max_age is not None and (
            isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age <= 0
        ):
            raise ConfigError(f"cookie_max_age must be a positive int or None, not {self.max_age!r}")
        lower = self.name.lower()
        if lower.startswith("__host-") and not (self.secure and self.path == "/" and self.domain is None):
            raise ConfigError("a __Host- cookie needs secure=True, path '/' and no domain")
        if lower.startswith("__secure-") and not self.secure:
            raise ConfigError("a __Secure- cookie needs secure=True")

    @property
    def cookie_name(self) -> str:
        """The name actually sent, with the ``__Host-`` prefix when it applies."""
        lower = self.name.lower()
        if (
            self.host_prefix
            and self.secure
            and self.path == "/"
            and self.domain is None
            and not lower.startswith(("__host-", "__secure-"))
        ):
            return "__Host-" + self.name
        return self.name

    def _attributes(self) -> str:
        parts = [f"Path={self.path}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append("SameSite=" + self.same_site.capitalize())
        return "; ".join(parts)

    def set_cookie(self, token: str, max_age: int | None = None) -> str:
        """``Set-Cookie`` value that hands ``token`` to the browser.

        ``max_age`` (seconds) overrides the policy's own: a session the app made persistent
        ("remember me") gets a cookie that survives a browser restart. ``None`` keeps the
        policy's value (by default a browser-session cookie).
        """
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0
        ):
            raise ConfigError(f"max_age must be a positive int or None, not {max_age!r}")
        age_value = self.max_age if max_age is None else max_age
        age = f"; Max-Age={age_value}" if age_value is not None else ""
        return f"{self.cookie_name}={token}{age}; {self._attributes()}"

    def delete_cookie(self) -> str:
        """``Set-Cookie`` value that makes the browser drop the session cookie."""
        return (
            f'{self.cookie_name}=""; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; '
            f"{self._attributes()}"
        )


def cookie_values(header: str, name: str) -> list[str]:
    """Every value sent for cookie ``name`` in a ``Cookie`` header (in order, unquoted)."""
    found: list[str] = []
    if name not in header:  # fast path: most headers do not carry the name at all
        return found
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if not sep or key.strip(_WSP) != name:
            continue
        value = value.strip(_WSP)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found.append(value)
    return found


def read_token(header: str | None, name: str) -> str | None:
    """The single value of cookie ``name``, or None if absent, repeated or oversized.

    The value is *not* validated as a token here; :func:`sessionkeeper.core.ids.is_valid_token`
    does that.
    """
    if not header:
        return None
    values = cookie_values(header, name)
    if len(values) != 1 or len(values[0]) > MAX_VALUE:
        return None
    return values[0]
