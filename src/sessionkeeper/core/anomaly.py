"""What the flow does when a signed-in session arrives from a client that does not look like
the one that signed in (fingerprint drift: another browser family or another network).

The rule every policy keeps: **the drifted request is the one that loses.** We cannot tell the
thief from the owner, so nothing the flow does on its own may hand the drifted client a cookie
for the signed-in session or take the session away from the client that signed in:

- the fingerprint compared is the one recorded at ``login()`` or ``reauthenticate()`` (the user
  proved who they are from that client); a drifted request never overwrites it;
- a drifted request never receives the signed-in session's token: no periodic renewal, no
  re-sending of a renewed ID, no ``Max-Age`` refresh, and a bare ``regenerate()`` by the app is
  not carried out (its changes are saved, the ID stays). Only a fresh authentication in that
  very request (``login()``, or ``reauthenticate()`` after the app checked the password)
  rotates the ID and records the new client's fingerprint;
- one drifted client is reported once per session (an ``anomaly`` event), not on every
  request: the session remembers the last client it reported (``Meta.info["drift"]``).
  ``"rotate"`` reports every drifted request (it writes nothing to the user's session).

========================  ===================================  ====================================
``anomaly_policy``        the user who signed in                the drifted request (maybe a thief)
========================  ===================================  ====================================
``"ignore"``              nothing happens                       uses the session; no event
``"log"`` (default)       nothing changes                       uses the session as the user; one
                                                                event. Detection only.
``"reauthenticate"``      stays signed in, but                  uses the session signed in, but
                          ``recently_authenticated()`` is       ``recently_authenticated()`` is
                          False until the password is asked     always False, so step-up gates
                          again (``reauthenticate()``)          (password change, payment) hold;
                                                                never gets a cookie from the flow
``"rotate"``              nothing changes: the session, its     gets a fresh anonymous session (its
                          ID and its cookie stay as they were   token is not honoured) and a cookie
                                                                that replaces the stolen one; an
                                                                event per drifted request
``"revoke"``              signed out everywhere the session     gets a fresh anonymous session; the
                          was used (it is deleted)              stolen token is dead
========================  ===================================  ====================================

A legitimate user who changes browser or network (a phone moving from Wi-Fi to mobile data)
is a drifted client too: under ``"rotate"`` they sign in again on that network, under
``"revoke"`` their session ends, under ``"reauthenticate"`` they enter their password before
the next sensitive action.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .fingerprint import AnomalyPolicy, Client, drift
from .records import Meta

REPORTED = "drift"  # Meta.info key: the last drifted client reported for this session


@dataclass(frozen=True, slots=True)
class DriftResponse:
    """What the flow does with one drifted request."""

    changed: tuple[str, ...]  # the fingerprint parts that differ ("ua", "net")
    report: bool  # emit an "anomaly" event
    honour: bool  # the request may use the session (False: it starts a fresh anonymous one)
    revoke: bool  # delete the session
    meta: Meta  # the metadata this request sees (and saves, when ``write``)
    write: bool  # ``meta`` differs from the stored one: save it even if the app changes nothing


def signature(client: Client) -> str:
    """A short text naming a client's fingerprint (what ``REPORTED`` holds)."""
    info = client.info()
    return f"{info['ua']}|{info['net']}"


def respond(policy: AnomalyPolicy, meta: Meta, client: Client) -> DriftResponse | None:
    """The response to ``client`` using a session with ``meta``; ``None`` if the policy is
    ``"ignore"``, nobody is signed in, or the client matches the recorded fingerprint."""
    if policy == "ignore" or meta.user_id is None:
        return None
    changed = tuple(drift(meta.info, client))
    if not changed:
        return None
    if policy == "revoke":
        return DriftResponse(changed, True, False, True, meta, False)
    if policy == "rotate":
        return DriftResponse(changed, True, False, False, meta, False)
    sig = signature(client)
    report = meta.info.get(REPORTED) != sig
    seen = meta if not report else replace(meta, info=_with(meta.info, REPORTED, sig))
    if policy == "reauthenticate":
        # The drifted request never counts as recently authenticated; the session as stored
        # loses its authentication time once per drifted client, so the owner proves who they
        # are again too (the app cannot tell which of the two is the thief).
        stored_auth = meta.auth_at is not None
        seen = replace(seen, auth_at=None)
        return DriftResponse(changed, report, True, False, seen, report or stored_auth)
    return DriftResponse(changed, report, True, False, seen, report)  # "log"


def _with(info: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    return {**info, key: value}
