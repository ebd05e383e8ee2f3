"""Session tokens and the storage keys derived from them.

Rules:
- A token is 32 bytes (256 bits) from :mod:`secrets`, base64url without padding: 43 chars.
- Stores only ever see ``storage_key(token)``: SHA-256 of the token, as 64 lowercase hex
  characters. A dump of any store therefore holds no usable token, and because a lookup
  compares hashes, timing a lookup tells an attacker about a hash, never about a token.
- Anything that is not exactly a well-formed token is rejected before it reaches a store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 32
TOKEN_LENGTH = 43  # base64url of 32 bytes, padding stripped
KEY_LENGTH = 64

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_KEY_RE = re.compile(r"[0-9a-f]{64}")
# base64url of 32 bytes: the last character carries 4 padding bits which must be zero,
# so only these 16 characters can end a canonical token.
_LAST_CHARS = frozenset("AEIMQUYcgkosw048")


def new_token() -> str:
    """Return a fresh 256-bit URL-safe session token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_valid_token(value: str) -> bool:
    """True if ``value`` has exactly the shape of a token this library issues."""
    return (
        len(value) == TOKEN_LENGTH
        and _TOKEN_RE.fullmatch(value) is not None
        and value[-1] in _LAST_CHARS
    )


def storage_key(token: str) -> str:
    """The key a store files a session under: SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_valid_key(value: str) -> bool:
    """True if ``value`` is shaped like a storage key (stores check this as a second fence)."""
    return len(value) == KEY_LENGTH and _KEY_RE.fullmatch(value) is not None


def public_id(key: str, secret: bytes) -> str:
    """A short keyed hash (HMAC-SHA256 of the storage key, 16 hex characters) that names a
    session in logs, events and device lists.

    It cannot be turned back into the key or the token. Whether it can be computed *from* a
    leaked key depends on ``secret``: with the library's default (a fixed, published label,
    used when :attr:`SessionConfig.id_secret <sessionkeeper.SessionConfig.id_secret>` is not
    set) anyone holding a storage key can compute its public id; with a per-deployment
    secret only those who know the secret can.
    """
    return hmac.new(secret, key.encode("ascii"), hashlib.sha256).hexdigest()[:16]


# ---- renewal aliases --------------------------------------------------------------------
# A periodic renewal moves a session to a new token; for a short grace window the old token
# must still lead to the session (in-flight requests, a lost response). The store then holds,
# under alias_key(old token), the new token wrapped with a keystream that only the holder of
# the old token can compute: a store dump reveals neither token.


def alias_key(token: str) -> str:
    """Where the renewal alias of ``token`` is kept (never equal to a storage key)."""
    return hashlib.sha256(b"sessionkeeper.alias:" + token.encode("ascii")).hexdigest()


def _keystream(old_token: str) -> bytes:
    return hashlib.sha512(b"sessionkeeper.renewal:" + old_token.encode("ascii")).digest()[:TOKEN_LENGTH]


def wrap_token(new_token: str, old_token: str) -> str:
    """``new_token`` encrypted for the holder of ``old_token`` (hex)."""
    return bytes(a ^ b for a, b in zip(new_token.encode("ascii"), _keystream(old_token), strict=True)).hex()


def unwrap_token(wrapped: str, old_token: str) -> str | None:
    """Inverse of :func:`wrap_token`; ``None`` if it does not yield a well-formed token."""
    try:
        raw = bytes.fromhex(wrapped)
    except (ValueError, TypeError):
        return None
    if len(raw) != TOKEN_LENGTH:
        return None
    token = bytes(a ^ b for a, b in zip(raw, _keystream(old_token), strict=True)).decode("latin-1")
    return token if is_valid_token(token) else None
