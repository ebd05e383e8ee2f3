"""Cookie policy, Set-Cookie text and Cookie header parsing (issue 2, behaviours 7 and 9)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper import ConfigError
from sessionkeeper.core import ids
from sessionkeeper.core.cookies import MAX_VALUE, CookiePolicy, cookie_values, read_token

TOKEN = ids.new_token()
PROPS = settings(deadline=None, database=None, max_examples=300)


def attrs(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    first, *rest = [p.strip() for p in set_cookie.split(";")]
    name, value = first.split("=", 1)
    out = {}
    for part in rest:
        k, _, v = part.partition("=")
        assert k.lower() not in {a.lower() for a in out}, f"attribute {k} repeated"
        out[k] = v
    return name, value, out


def test_secure_defaults() -> None:
    assert CookiePolicy().set_cookie(TOKEN) == (
        f"__Host-session={TOKEN}; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    _, _, a = attrs(CookiePolicy().set_cookie(TOKEN))
    assert "Max-Age" not in a and "Expires" not in a and "Domain" not in a


@pytest.mark.parametrize(
    ("policy", "name"),
    [
        (CookiePolicy(), "__Host-session"),
        (CookiePolicy(name="sid"), "__Host-sid"),
        (CookiePolicy(secure=False), "session"),
        (CookiePolicy(domain="example.com"), "session"),
        (CookiePolicy(path="/app"), "session"),
        (CookiePolicy(host_prefix=False), "session"),
        (CookiePolicy(name="__Secure-sid"), "__Secure-sid"),
        (CookiePolicy(name="__Host-sid"), "__Host-sid"),
    ],
)
def test_host_prefix_only_when_the_browser_would_accept_it(policy: CookiePolicy, name: str) -> None:
    assert policy.cookie_name == name
    assert attrs(policy.set_cookie(TOKEN))[0] == name


def test_attributes_follow_the_policy() -> None:
    policy = CookiePolicy(secure=False, http_only=False, same_site="strict", domain="example.com",
                          path="/app", max_age=3600)
    name, value, a = attrs(policy.set_cookie(TOKEN))
    assert (name, value) == ("session", TOKEN)
    assert a == {"Max-Age": "3600", "Path": "/app", "Domain": "example.com", "SameSite": "Strict"}
    assert attrs(CookiePolicy(same_site="none").set_cookie(TOKEN))[2]["SameSite"] == "None"


@pytest.mark.parametrize("policy", [CookiePolicy(), CookiePolicy(secure=False, path="/app", domain="a.test")])
def test_delete_cookie_expires_the_same_name_and_path(policy: CookiePolicy) -> None:
    name, value, a = attrs(policy.delete_cookie())
    _, _, set_attrs = attrs(policy.set_cookie(TOKEN))
    assert name == policy.cookie_name
    assert value == '""'
    assert a["Max-Age"] == "0"
    assert a["Expires"].endswith("1970 00:00:00 GMT")
    assert {k: v for k, v in a.items() if k not in ("Max-Age", "Expires")} == set_attrs


@pytest.mark.parametrize(
    "options",
    [
        {"name": ""},
        {"name": "a b"},
        {"name": "a;b"},
        {"name": "a=b"},
        {"name": "sessión"},
        {"same_site": "bogus"},
        {"same_site": None},
        {"secure": "false"},
        {"http_only": 1},
        {"host_prefix": "yes"},
        {"path": 5},
        {"domain": b"example.com"},
        {"same_site": "none", "secure": False},
        {"path": "app"},
        {"path": "/a;b"},
        {"path": "/a b"},
        {"domain": ""},
        {"domain": "a;b"},
        {"max_age": 0},
        {"max_age": -1},
        {"max_age": True},
        {"max_age": 1.5},
        {"max_age": "60"},
        {"name": "__Host-sid", "secure": False},
        {"name": "__Host-sid", "path": "/app"},
        {"name": "__host-sid", "domain": "example.com"},
        {"name": "__Secure-sid", "secure": False},
    ],
)
def test_invalid_policies_raise_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CookiePolicy(**options)  # type: ignore[arg-type]


# ---- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        (f"session={TOKEN}", TOKEN),
        (f"  session = {TOKEN} ", TOKEN),
        (f'session="{TOKEN}"', TOKEN),
        (f"a=1; session={TOKEN}; b=2", TOKEN),
        (f"a=1;session={TOKEN};b=2", TOKEN),
        (f"session={TOKEN}; session={TOKEN}", None),  # even the same value twice
        (f"session={TOKEN}; a=1; session=other", None),
        (f"session={TOKEN}; session", TOKEN),  # a bare name carries no value
        (f"xsession={TOKEN}", None),
        (f"session2={TOKEN}", None),
        (f"other=session={TOKEN}", None),
        (f"SESSION={TOKEN}", None),  # names are case-sensitive
        # RFC 6265bis trims only SP and HTAB (issue 8.1: str.strip() also ate NBSP & co.)
        (f"\t session\t = \t{TOKEN}\t ", TOKEN),
        (f"\xa0session={TOKEN}", None),
        (f"session\x85={TOKEN}", None),
        (f"\x1fsession={TOKEN}; a=1", None),
        (f"\xa0session=x; session={TOKEN}", TOKEN),  # not a duplicate of ours
        (f"session=\xa0{TOKEN}", "\xa0" + TOKEN),  # kept: is_valid_token then refuses it
        (f";;; ==; =; junk; \x00=\x00; session={TOKEN}", TOKEN),
        ("session=", ""),
        ('session="', '"'),
        ("session=é", "é"),
        ("session=" + "A" * MAX_VALUE, "A" * MAX_VALUE),
        ("session=" + "A" * (MAX_VALUE + 1), None),
    ],
)
def test_read_token(header: str | None, expected: str | None) -> None:
    assert read_token(header, "session") == expected


def test_cookie_values_keeps_order() -> None:
    assert cookie_values("s=1; t=2; s=3", "s") == ["1", "3"]


# ---- properties -------------------------------------------------------------------------

NAMES = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=12)
VALUES = st.text(alphabet=st.characters(exclude_characters=";"), max_size=60)


@PROPS
@given(header=st.text(max_size=300), name=NAMES)
def test_parser_never_raises(header: str, name: str) -> None:
    result = read_token(header, name)
    assert result is None or isinstance(result, str)


@PROPS
@given(
    name=NAMES,
    first=VALUES,
    second=VALUES,
    others=st.lists(st.tuples(NAMES, VALUES), max_size=5),
    where=st.integers(min_value=0, max_value=6),
)
def test_duplicates_never_yield_a_value(
    name: str, first: str, second: str, others: list[tuple[str, str]], where: int
) -> None:
    pairs = [f"{k}={v}" for k, v in others]
    pairs.insert(min(where, len(pairs)), f"{name}={first}")
    pairs.append(f" {name} = {second}")
    assert read_token("; ".join(pairs), name) is None


@PROPS
@given(
    name=NAMES,
    secure=st.booleans(),
    path=st.sampled_from(["/", "/app", "/a/b/"]),
    domain=st.none() | st.just("example.com"),
    same_site=st.sampled_from(["lax", "strict", "none"]),
    max_age=st.none() | st.integers(min_value=1, max_value=10**9),
    others=st.lists(st.tuples(NAMES, VALUES), max_size=4),
)
def test_our_set_cookie_parses_back(
    name: str, secure: bool, path: str, domain: str | None, same_site: str,
    max_age: int | None, others: list[tuple[str, str]],
) -> None:
    if same_site == "none":
        secure = True
    if name.lower().startswith(("__host-", "__secure-")):
        name = "x" + name
    policy = CookiePolicy(name=name, secure=secure, path=path, domain=domain,
                          same_site=same_site, max_age=max_age)  # type: ignore[arg-type]
    token = ids.new_token()
    # A browser sends back only name=value; mix it with unrelated cookies.
    sent = policy.set_cookie(token).split(";", 1)[0]
    pairs = [f"{k}={v}" for k, v in others if k != policy.cookie_name] + [sent]
    assert read_token("; ".join(pairs), policy.cookie_name) == token


def test_set_cookie_explicit_max_age_overrides_the_policy() -> None:
    """"Remember me": a persistent session's cookie carries its own Max-Age."""
    browser_session = CookiePolicy()
    assert "Max-Age" not in browser_session.set_cookie("t")
    assert "; Max-Age=2592000;" in browser_session.set_cookie("t", max_age=2592000)
    fixed = CookiePolicy(max_age=600)
    assert "; Max-Age=600;" in fixed.set_cookie("t")
    assert "; Max-Age=86400;" in fixed.set_cookie("t", max_age=86400)
    assert fixed.set_cookie("t", max_age=86400).count("Max-Age") == 1
    for bad in (0, -5, True, 1.5):
        with pytest.raises(ConfigError, match="max_age"):
            fixed.set_cookie("t", max_age=bad)  # type: ignore[arg-type]
