"""Configuration that would silently weaken a defence is refused at construction, with a message
naming the option (issue 8 points 6 and 11, issue 9 point 5).

Requirements: ASVS 5.0 V3.5.1 / WSTG-SESS-05 (cross-site request forgery: ``trusted_origins``
cannot be made to trust ``null`` or a scheme-less entry), ASVS 5.0 V3.3.1, V3.3.2 and V3.3.4 /
WSTG-SESS-02 (cookie attributes: ``secure="false"`` is a truthy string, not a way to set
``Secure``; SameSite in any spelling), ASVS 5.0 V7.1 (session security decisions documented,
and the documentation true: public ids and ``id_secret``; no V7 requirement names public ids).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from typing import Any

import pytest

from sessionkeeper import ConfigError, SessionConfig, Store, asgi, wsgi
from sessionkeeper.core import ids
from sessionkeeper.core.events import SessionEvent

from .conftest import Client, asgi_app, wsgi_app

# ---- issue 8.6: trusted_origins ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("null", "null"),
        ("NULL", "null"),
        (" null ", "null"),
        ("example.com", "scheme"),
        ("app.example.com:8443", "scheme"),
        ("//example.com", "scheme"),
        ("ftp://example.com", "scheme"),
        ("https:/example.com", "scheme"),
        ("https://*.example.com", "wildcard"),
        ("*", "wildcard"),
        ("https://example.com/app", "path"),
        ("https://example.com/?next=/", "path"),
        ("https://example.com#x", "path"),
        ("https://user@example.com", "user name"),
        ("https://user:pw@example.com", "user name"),
        ("", "empty"),
        ("   ", "empty"),
        ("https://", "host"),
        ("https://example.com:0", "port"),
        ("https://example.com:99999", "port"),
        ("https://exa mple.com", "ASCII"),
        ("https://bücher.example", "xn--"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_v3_5_1_wstg_sess_05_trusted_origins_refuses_entries_that_weaken_csrf(
    entry: Any, message: str
) -> None:
    """Each of these silently trusted more (or something other) than the app meant: on the old
    code ``"null"`` made every sandboxed iframe trusted."""
    with pytest.raises(ConfigError, match="trusted_origins") as info:
        SessionConfig(csrf=True, trusted_origins=[entry])
    assert message.lower() in str(info.value).lower()


def test_v3_5_1_trusted_origins_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="list"):
        SessionConfig(trusted_origins="https://example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("https://Example.COM", "https://example.com"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("HTTP://example.com:80/", "http://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://[::1]:443", "https://[::1]"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_v3_5_1_trusted_origins_are_normalised_as_browsers_send_them(entry: str, normalised: str) -> None:
    assert SessionConfig(trusted_origins=[entry]).trusted_origins == (normalised,)


@pytest.mark.parametrize("mw", [asgi.SessionMiddleware, wsgi.SessionMiddleware])
def test_v3_5_1_middleware_refuses_null_in_trusted_origins(mw: Any, memory_store: Store) -> None:
    """At construction, not at the first request (failed on the old code: accepted)."""
    with pytest.raises(ConfigError, match="null"):
        mw(asgi_app(), store=memory_store, csrf=True, trusted_origins=["https://app.example", "null"])


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_v3_5_1_wstg_sess_05_origin_null_cross_site_is_refused(
    kind: str, memory_store: Store, method: str
) -> None:
    """``Origin: null`` with ``Sec-Fetch-Site: cross-site`` (what a sandboxed iframe on an
    attacker's page sends) is refused with csrf on, through the real middleware, and the
    session is not written. The same request same-origin is let through (the test can fail)."""
    client = Client(kind, memory_store, csrf=True, trusted_origins=["https://partner.example"])
    token = client.request("/set", query=b"who=victim").token
    assert token
    cookie = f"__Host-session={token}".encode()
    attack = [(b"origin", b"null"), (b"sec-fetch-site", b"cross-site")]
    refused = client.request("/set", method=method, query=b"who=attacker", cookie=cookie, headers=attack)
    assert refused.status == 403
    assert client.request("/read", cookie=cookie).json["who"] == "victim"
    own = [(b"origin", b"https://testserver"), (b"sec-fetch-site", b"same-origin")]
    allowed = client.request("/set", method=method, query=b"who=me", cookie=cookie, headers=own)
    assert allowed.status == 200
    assert client.request("/read", cookie=cookie).json["who"] == "me"
    partner = [(b"origin", b"https://partner.example"), (b"sec-fetch-site", b"cross-site")]
    assert client.request("/set", method="POST", cookie=cookie, headers=partner).status == 200


# ---- issue 9.5: wrong types at construction --------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("secure", "false"),
        ("secure", "False"),
        ("secure", 0),
        ("secure", None),
        ("http_only", "true"),
        ("http_only", 1),
        ("host_prefix", "no"),
        ("lazy_load", "yes"),
        ("csrf", "on"),
        ("csrf", 1),
        ("cookie_name", 5),
        ("cookie_name", b"sid"),
        ("cookie_path", None),
        ("cookie_domain", 7),
        ("header_name", None),
        ("header_name", 1),
        ("url_param", ["sid"]),
        ("transport", None),
        ("same_site", None),
        ("same_site", True),
        ("probe_threshold", "20"),
        ("probe_threshold", 0),
        ("probe_threshold", 2.5),
        ("probe_threshold", True),
        ("probe_window", "60"),
        ("probe_window", 0),
        ("probe_window", float("nan")),
        ("renew_grace", True),
        ("on_event", "print"),
        ("on_event", [1]),
        ("id_secret", 5),
        ("id_secret", b""),
        ("clock", 5),
        ("token_factory", "x"),
        ("max_size", "64k"),
        ("cookie_max_age", "3600"),
    ],
)
def test_v3_3_1_wstg_sess_02_wrong_types_are_refused_naming_the_option(option: str, value: Any) -> None:
    """``secure="false"`` is truthy: on the old code it kept Secure on while looking like it
    turned it off (and ``http_only="false"`` likewise); a number where a name belongs failed
    later with a TypeError that named nothing."""
    with pytest.raises(ConfigError, match=option):
        SessionConfig(**{option: value})


@pytest.mark.parametrize("mw", [asgi.SessionMiddleware, wsgi.SessionMiddleware])
def test_v3_3_1_wstg_sess_02_middleware_refuses_secure_as_a_string(mw: Any, memory_store: Store) -> None:
    with pytest.raises(ConfigError, match="secure"):
        mw(wsgi_app(), store=memory_store, secure="false")


@pytest.mark.parametrize(
    ("value", "attribute"),
    [("Lax", "Lax"), ("LAX", "Lax"), ("Strict", "Strict"), ("STRICT", "Strict"), ("None", "None"),
     ("none", "None"), ("lax", "Lax")],
)
def test_v3_3_2_wstg_sess_02_same_site_in_any_case(value: str, attribute: str) -> None:
    """Flask's own spelling ("Lax", "None") is accepted and normalised to lowercase."""
    config = SessionConfig(same_site=value)  # type: ignore[arg-type]
    assert config.same_site == attribute.lower() == config.cookie.same_site
    assert f"SameSite={attribute}" in config.cookie.set_cookie(ids.new_token())


def test_v3_3_2_wstg_sess_02_same_site_none_still_needs_secure() -> None:
    with pytest.raises(ConfigError, match="secure"):
        SessionConfig(same_site="None", secure=False)  # type: ignore[arg-type]


# ---- issue 8.11: id_secret and public ids ------------------------------------------------------


def _docs(obj: Any) -> str:
    return " ".join((inspect.getdoc(obj) or "").split())


def test_v7_1_default_public_ids_are_computable_from_a_storage_key_as_documented() -> None:
    """The documented behaviour of the default: the key is a fixed, published label, so anyone
    with a storage key (a store dump) computes the public id. The old docstring claimed the
    opposite; the docs now say so, and this pins both the behaviour and the statement."""
    key = ids.storage_key(ids.new_token())
    label = b"sessionkeeper.public-id.v1"
    outsider = hmac.new(label, key.encode(), hashlib.sha256).hexdigest()[:16]
    config = SessionConfig()
    assert config.id_secret_bytes == label
    assert ids.public_id(key, config.id_secret_bytes) == outsider
    doc = _docs(ids.public_id)
    assert "fixed, published label" in doc and "anyone holding a storage key" in doc
    assert "without ``secret`` it cannot be computed" not in doc  # the old, false claim
    assert "computable by anyone holding a storage key" in _docs(SessionConfig.id_secret_bytes)


@pytest.mark.parametrize(
    "secret", [b"\x8f" * 32, "a per-deployment secret from the vault"], ids=["bytes", "str"]
)
def test_v7_1_with_id_secret_public_ids_are_not_computable_from_the_key(
    kind: str, memory_store: Store, secret: bytes | str
) -> None:
    """Through a real request: the public id in the ``created`` event is HMAC(secret, key);
    an attacker holding the token, the key and every public label still cannot compute it."""
    events: list[SessionEvent] = []
    client = Client(kind, memory_store, id_secret=secret, on_event=events.append)
    token = client.request("/set").token
    assert token
    key = ids.storage_key(token)
    (created,) = [e for e in events if e.kind == "created"]
    raw = secret.encode() if isinstance(secret, str) else secret
    assert created.session_id == ids.public_id(key, raw)
    guesses = [b"sessionkeeper.public-id.v1", b"", key.encode(), token.encode(), b"sessionkeeper"]
    assert created.session_id not in {ids.public_id(key, g) for g in guesses}
    assert created.session_id not in {hashlib.sha256(key.encode()).hexdigest()[:16], key[:16]}
