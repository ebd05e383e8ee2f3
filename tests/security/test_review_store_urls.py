"""Review R1: store URL strings (``store="redis://user:pw@host/0"`` on every adapter, issue 9)
must never echo the password.

WSTG-SESS-04 (exposed session variables: the store's credentials give every session) and the
project rule "never put a secret in a log line, repr or exception message" (ASVS 5.0 V7 token
and credential exposure; V13.3.1 secrets are not in error output). A typo in a deployment's
URL ends up in a traceback, an error tracker, a CI log: the message must name the store and its
address without the password.
"""

from __future__ import annotations

import pytest

from sessionkeeper import ConfigError, open_store
from sessionkeeper import asgi as sk_asgi

SECRET = "s3cretPW"

# Well-formed URLs: already sound (repr and the unavailable message hide the password).
SOUND = [
    f"redis://user:{SECRET}@127.0.0.1:1/0",
    f"redis+cluster://u:{SECRET}@127.0.0.1:1",
    f"postgresql://u:{SECRET}@127.0.0.1:5432/test?bogus=1",
    f"redis://:{SECRET}@127.0.0.1:notaport/0",
    f"redis://:{SECRET}@127.0.0.1:6379/abc",
    f"redis://:{SECRET}@127.0.0.1:6379/0?bogus=1",
    f"postgresql://u:{SECRET}@127.0.0.1:1/test?connect_timeout=abc",
]

# Malformed URLs (an unclosed IPv6 bracket, credentials on a file-based store): the message
# quotes the whole URL, password included.
LEAKY = [
    f"rediss://:{SECRET}@[::1:6379/0",
    f"postgresql://u:{SECRET}@[::1/test",
    f"redis+cluster://u:{SECRET}@[::1:1",
    f"sqlite://u:{SECRET}@/tmp/x.db",
    f"file://u:{SECRET}@/tmp/x",
]


def _messages(exc: BaseException) -> str:
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out.append(str(seen))
        out.append(repr(seen.args))
        seen = seen.__cause__ or seen.__context__
    return " ".join(out)


@pytest.mark.parametrize("url", SOUND)
def test_wstg_sess_04_well_formed_store_url_errors_hide_the_password(url: str) -> None:
    """WSTG-SESS-04: refused options and the repr of an opened store never show the password."""
    refused: ConfigError | None = None
    try:
        store = open_store(url)
    except ConfigError as exc:
        refused = exc
    if refused is not None:
        text = _messages(refused)
    else:
        try:
            text = repr(store) + str(store)
        finally:
            store.close()
    assert SECRET not in text


@pytest.mark.parametrize("url", LEAKY)
def test_wstg_sess_04_malformed_store_url_error_hides_the_password(url: str) -> None:
    """WSTG-SESS-04: a malformed URL is refused with a message that says what is wrong and
    where, with the password replaced (``***``), also when the adapter opened it (``store=``
    given as a string)."""
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert SECRET not in _messages(caught.value)


def test_wstg_sess_04_adapter_store_string_error_hides_the_password() -> None:
    """WSTG-SESS-04: the same through an adapter's ``store=`` string (``_adapter.resolve_store``),
    the way most deployments pass a URL from the environment."""

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ConfigError) as caught:
        sk_asgi.SessionMiddleware(app, store=f"redis://:{SECRET}@[::1:6379/0")
    assert SECRET not in _messages(caught.value)
