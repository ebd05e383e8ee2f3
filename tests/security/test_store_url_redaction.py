"""Store URLs in messages: the password never shows (WSTG-SESS-04, ASVS 5.0 V13.3.1: secrets
are not in error output). One helper, :func:`sessionkeeper.stores.base.redact_url`, quotes
every store URL a message names, also one that :func:`urllib.parse.urlsplit` refuses.

Only URLs refused before any connection is tried are opened here (no network).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper import ConfigError, open_store
from sessionkeeper.stores.base import redact_url

# The password always carries this marker, which no host, path or user below contains.
MARK = "PWX"
password = st.text(alphabet=st.characters(blacklist_characters="@/?#", blacklist_categories=("Cs",)),
                   max_size=12).map(lambda t: MARK + t)
user = st.text(alphabet="abcdefghijk_.-", max_size=6)
host = st.sampled_from(["127.0.0.1", "db.example", "[::1]", "[::1", "", "h\uff0fst", "a,b:1"])
tail = st.sampled_from(["", "/0", "/tmp/x.db", "/test?sslmode=disable", "?x=1#frag", "/d#f"])
scheme = st.sampled_from(["redis", "rediss", "redis+cluster", "postgresql", "sqlite", "file", "memory", ""])


def _messages(exc: BaseException) -> str:
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out.append(str(seen))
        out.append(repr(seen.args))
        seen = seen.__cause__ or seen.__context__
    return " ".join(out)


def _url(scheme: str, user: str, password: str, host: str, tail: str) -> str:
    return f"{scheme}://{user}:{password}@{host}{tail}" if scheme else f"{user}:{password}@{host}{tail}"


@given(scheme, user, password, host, tail)
def test_wstg_sess_04_redact_url_never_shows_the_password(
    scheme: str, user: str, password: str, host: str, tail: str
) -> None:
    """WSTG-SESS-04 (property): ``redact_url`` of any URL text, well formed or not, keeps
    no trace of the password; for a URL ``urlsplit`` accepts, the text and the split parts
    give the same answer."""
    url = _url(scheme, user, password, host, tail)
    shown = redact_url(url)
    assert MARK not in shown
    if user and scheme:
        assert f"{user}@" in shown  # the account is still named
    if not scheme:
        return  # not a URL: urlsplit would read it all as a path
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    assert redact_url(parts) == shown


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{MARK}s3cret@/0",  # no host: "names no host"
        f"redis://u:{MARK}s3cret@ho\uff0fst:1/0",  # urlsplit's own message quotes the netloc
        f"u:{MARK}s3cret@127.0.0.1:6379/0",  # the scheme forgotten: "is not a URL"
        f"sqlite:///x.db?password={MARK}s3cret",  # a query where none is taken
        f"file:///tmp/sk-test-dir?key={MARK}s3cret",
    ],
)
def test_wstg_sess_04_refused_store_urls_hide_the_password(url: str) -> None:
    """WSTG-SESS-04: each refusal says what is wrong and names the URL without its secrets."""
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    text = _messages(caught.value)
    assert MARK not in text
    assert "URL" in text  # it still says which setting is wrong
