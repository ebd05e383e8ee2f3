"""The WSGI adapter reads only the headers the flow needs, straight from the environ keys
(PEP 3333). Property: for any environ, it finds what converting every ``HTTP_`` key would."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.core.flow import info_from_headers
from sessionkeeper.wsgi import request_info

_NAMES = ["COOKIE", "HOST", "USER_AGENT", "ORIGIN", "SEC_FETCH_SITE", "X_SESSION_TOKEN",
          "X_API_SESSION", "ACCEPT", "ACCEPT_LANGUAGE", "REFERER", "X_FORWARDED_FOR"]


def _every_header(environ: dict[str, Any], header_name: str) -> Any:
    """The oracle: every HTTP_ key converted to a lowercase header name, then picked."""
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    return info_from_headers(
        str(environ.get("REQUEST_METHOD") or "GET"), headers,
        query=str(environ.get("QUERY_STRING") or ""), ip=environ.get("REMOTE_ADDR"),
        scheme=str(environ.get("wsgi.url_scheme") or "http"), header_name=header_name)


@given(
    headers=st.dictionaries(st.sampled_from(_NAMES), st.text(max_size=40), max_size=len(_NAMES)),
    header_name=st.sampled_from(["X-Session-Token", "x-api-session", "X-Api-Session"]),
    method=st.sampled_from(["GET", "post", "DELETE", ""]),
)
def test_reads_what_converting_every_header_would(
    headers: dict[str, str], header_name: str, method: str
) -> None:
    environ: dict[str, Any] = {f"HTTP_{k}": v for k, v in headers.items()}
    environ.update({"REQUEST_METHOD": method, "QUERY_STRING": "a=1", "REMOTE_ADDR": "192.0.2.7",
                    "wsgi.url_scheme": "https", "SERVER_NAME": "x"})
    assert request_info(environ, header_name) == _every_header(environ, header_name)


def test_a_custom_token_header_is_read_and_other_headers_are_not() -> None:
    environ = {"REQUEST_METHOD": "GET", "HTTP_X_API_SESSION": "tok", "HTTP_AUTHORIZATION": "Bearer s3cret",
               "HTTP_COOKIE": "a=b"}
    info = request_info(environ, "X-Api-Session")
    assert info.header_token == "tok"
    assert info.cookie == "a=b"
    assert "s3cret" not in repr(info)
