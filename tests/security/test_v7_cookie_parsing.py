"""Reading the session cookie out of a ``Cookie`` header: the ``__Host-`` prefix cannot be
bypassed by a name that differs from ours only by characters a lenient server trims
(issue 8 point 1).

Requirements: ASVS 5.0 V3.3.3 (the ``__Host-`` prefix: its guarantee that no other host set
the cookie holds end to end, so the server must read only the exact name), ASVS 5.0 V7.2.1
(the session token is verified by the backend: only the cookie this server set is read),
WSTG-SESS-02 (cookie attributes), WSTG-SESS-03 (session fixation / swapping by a planted
cookie).
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper import Store
from sessionkeeper.core import ids
from sessionkeeper.core.cookies import read_token

from .conftest import COOKIE, Client

PROPS = settings(deadline=None, database=None, max_examples=300)

# Every code point Python's str.strip() / str.split() treats as whitespace or that a lenient
# parser might drop: C0 controls, DEL, the C1 block up to NBSP, and the Unicode odd ones.
JUNK = list(dict.fromkeys(
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA1)]
    + ["\x85", "\u2028", "\u2029", "\ufeff", "\u200b", "\u3000", "\u1680", "\u2000", "\u202f"]
))
NAME = COOKIE  # "__Host-session", the default policy's name


def test_v3_3_3_v7_2_1_wstg_sess_03_attack_header_reads_the_victims_token() -> None:
    """The reported attack: a sibling subdomain planted ``\\xa0__Host-session=<attacker>`` with
    ``Domain=<parent>``; the browser sends it beside the victim's real ``__Host-`` cookie.
    Old code read both as ours (a duplicate -> no session, a forced logout)."""
    attacker, victim = ids.new_token(), ids.new_token()
    header = f"\xa0{NAME}={attacker}; {NAME}={victim}"
    assert read_token(header, NAME) == victim
    # Planted cookie after the real one, too.
    assert read_token(f"{NAME}={victim}; \xa0{NAME}={attacker}", NAME) == victim


def test_v3_3_3_v7_2_1_wstg_sess_03_planted_cookie_alone_is_no_token() -> None:
    """Alone, the planted cookie must not sign the victim into the attacker's account (login
    CSRF / session swapping): old code returned the attacker's token."""
    attacker = ids.new_token()
    assert read_token(f"\xa0{NAME}={attacker}", NAME) is None
    assert read_token(f"{NAME}\xa0={attacker}", NAME) is None
    assert read_token(f"\x1f{NAME}={attacker}; x=1", NAME) is None


@pytest.mark.parametrize("junk", JUNK, ids=[f"U+{ord(c):04X}" for c in JUNK])
@pytest.mark.parametrize("where", ["before", "after", "inside"])
def test_v3_3_3_wstg_sess_02_every_trimmable_code_point_breaks_the_match(junk: str, where: str) -> None:
    """Each code point below 0x20, 0x7f-0xa0 and the Unicode spaces, before, after or inside
    the name: never our cookie, alone or beside the real one. The one exception is HTAB
    (U+0009) around the name, which RFC 6265bis trims like SP."""
    token = ids.new_token()
    name = {"before": junk + NAME, "after": NAME + junk, "inside": NAME[:7] + junk + NAME[7:]}[where]
    if junk == "\t" and where != "inside":
        assert read_token(f"{name}={token}", NAME) == token  # RFC 6265bis: HTAB is trimmed
    else:
        assert read_token(f"{name}={token}", NAME) is None
        real = ids.new_token()
        assert read_token(f"{name}={token}; {NAME}={real}", NAME) == real


def test_v3_3_3_wstg_sess_02_only_sp_and_htab_are_trimmed_around_the_value() -> None:
    token = ids.new_token()
    assert read_token(f" \t{NAME} \t= \t{token}\t ", NAME) == token
    for junk in ("\xa0", "\x85", "\x0b", "\x0c", "\r", "\n", "\u2028", "\ufeff"):
        # A value that is not exactly a token never reaches the store (is_valid_token).
        value = read_token(f"{NAME}={junk}{token}", NAME)
        assert value == junk + token and not ids.is_valid_token(value)


@st.composite
def confusable_name(draw: st.DrawFn) -> str:
    """Our name with junk code points added before, after and inside it."""
    junk = st.text(alphabet=st.sampled_from(JUNK), min_size=1, max_size=3)
    name = NAME
    places = st.sampled_from(["before", "after", "inside"])
    parts = draw(st.lists(places, min_size=1, max_size=3, unique=True))
    for where in parts:
        j = draw(junk)
        if where == "before":
            name = j + name
        elif where == "after":
            name = name + j
        else:
            at = draw(st.integers(min_value=1, max_value=len(NAME) - 1))
            name = name[:at] + j + name[at:]
    # RFC 6265bis trims SP and HTAB around the name: surround with them too, they must not help.
    pad = st.text(alphabet=" \t", max_size=2)
    return draw(pad) + name + draw(pad)


OTHER_NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=10).filter(
    lambda n: n != NAME
)


@PROPS
@given(
    planted=st.lists(confusable_name(), min_size=1, max_size=3),
    others=st.lists(st.tuples(OTHER_NAMES, st.text(alphabet=string.ascii_letters, max_size=8)), max_size=3),
    real=st.booleans(),
    where=st.integers(min_value=0, max_value=8),
)
def test_v7_2_1_wstg_sess_03_fuzz_confusable_names_never_match(
    planted: list[str], others: list[tuple[str, str]], real: bool, where: int
) -> None:
    """Hypothesis: any number of confusable names (with the HTAB-only padding RFC 6265bis
    allows stripped, they still differ from ours) never count as our cookie, whether or not
    the real cookie is there too."""
    planted = [p for p in planted if p.strip(" \t") != NAME]  # pure SP/HTAB padding is ours
    token = ids.new_token()
    pairs = [f"{n}={ids.new_token()}" for n in planted] + [f"{k}={v}" for k, v in others]
    if real:
        pairs.insert(min(where, len(pairs)), f"{NAME}={token}")
    header = "; ".join(pairs)
    assert read_token(header, NAME) == (token if real else None)


# ---- end to end: the bytes a browser sends, through the real middlewares ---------------------


@pytest.mark.parametrize(
    "prefix", [b"\xa0", "\xa0".encode(), b"\x1f", b"\x85"], ids=["A0", "C2A0", "1F", "85"]
)
def test_v7_2_1_wstg_sess_03_planted_cookie_through_the_middleware(
    kind: str, memory_store: Store, prefix: bytes
) -> None:
    """The raw bytes before the name (``0xA0`` as Chromium sends a raw byte back, or UTF-8
    ``C2 A0``) through the ASGI and WSGI middlewares (headers latin-1 decoded): the victim
    keeps their own session; the planted cookie alone is never adopted (a new, empty session,
    and the attacker's token never appears in a Set-Cookie)."""
    client = Client(kind, memory_store)
    attacker = client.request("/set", query=b"who=attacker").token
    victim = client.request("/set", query=b"who=victim").token
    assert attacker and victim
    planted = prefix + f"{NAME}={attacker}".encode()

    both = client.request("/read", cookie=planted + f"; {NAME}={victim}".encode())
    assert both.status == 200 and both.json["who"] == "victim"
    both = client.request("/read", cookie=f"{NAME}={victim}; ".encode() + planted)
    assert both.status == 200 and both.json["who"] == "victim"

    alone = client.request("/set", query=b"who=fresh", cookie=planted)
    assert alone.status == 200 and alone.json == {"who": "fresh", "n": 1, "new": True}
    assert alone.token not in (None, attacker)
    assert all(attacker not in h for h in alone.all("set-cookie"))
