"""OpenTelemetry metrics for sessionkeeper (the ``[otel]`` extra: ``opentelemetry-api``).

Two small pieces, each usable alone, neither touching a store's or an adapter's code:

- :func:`subscriber` turns the :class:`~sessionkeeper.SessionEvent` stream (``on_event``) into
  counters: sessions created, rotated, destroyed, expired, revoked, refused; logins,
  anomalies and probes.
- :func:`instrument` wraps a :class:`~sessionkeeper.Store` in a transparent proxy that times
  every operation (a histogram by store and operation) and counts the errors by class.

::

    from sessionkeeper import SessionConfig, open_store, otel

    store = otel.instrument(open_store("redis://127.0.0.1:6379/0"))
    config = SessionConfig(on_event=[otel.subscriber(store=store, adapter="asgi")])

Both take ``meter_provider=`` (default: the global one that the OpenTelemetry SDK or its
auto-instrumentation installs; without one, the API's no-op meters cost next to nothing).

Attribute rule: metrics are aggregated and exported to systems that many people read, so no
attribute value ever carries a token, a storage key, a public session id, a user id, an IP
network or any other per-session or per-user value. The only attributes are the event's
``reason`` (a short lowercase word the library or the app chose, see :func:`_safe_reason`),
the anomaly policy, the store kind, the adapter name, the operation name and the error class:
a handful of values each, so the series count stays bounded too.

Naming: one counter per lifecycle kind (``sessionkeeper.sessions.created`` …), not one
counter with a ``kind`` attribute. OpenTelemetry's naming guidance asks that summing a
metric over an attribute give a meaningful total; "created + expired + revoked" is not a
quantity anyone wants, while each kind alone is a rate people alert on. Kinds that are the
same quantity for different causes (rotations by login or renewal, revocations by admin or
session limit) share one counter and are told apart by ``sessionkeeper.reason``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "sessionkeeper.otel needs the OpenTelemetry API: pip install 'sessionkeeper[otel]'"
    ) from exc

from ._version import __version__
from .core.events import SessionEvent
from .core.records import Apply, Count, Create, Delete, ListUser, Load, Op, Purge, Rename, Scan
from .stores.base import Store, open_store

__all__ = [
    "DURATION_BUCKETS",
    "InstrumentedStore",
    "MetricsSubscriber",
    "instrument",
    "subscriber",
]

#: the instrumentation scope (meter) name every instrument is created under
SCOPE: Final = "sessionkeeper"

# Attribute keys (namespaced, as OpenTelemetry semantic conventions ask of a library's own
# attributes; ``error.type`` is the conventions' own key for an error's class).
STORE: Final = "sessionkeeper.store"
ADAPTER: Final = "sessionkeeper.adapter"
REASON: Final = "sessionkeeper.reason"
POLICY: Final = "sessionkeeper.anomaly.policy"
OPERATION: Final = "sessionkeeper.store.operation"
ERROR_TYPE: Final = "error.type"

#: Bucket bounds (seconds) of the store latency histogram: an in-process store answers in
#: microseconds, a network one in a fraction of a millisecond to a few, an outage in seconds.
#: (The SDK's default bounds, 0-10,000, suit milliseconds, not seconds.)
DURATION_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)

_OP_NAMES: Final[dict[type, str]] = {
    Load: "load", Create: "create", Apply: "apply", Rename: "rename", Delete: "delete",
    ListUser: "list_user", Purge: "purge", Count: "count", Scan: "scan",
}

# An app may pass its own reason to SessionManager.revoke*(); only a short identifier-like
# word goes through (anything else, e.g. free text that could hold a name, becomes "other").
_REASON_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


def _meter(meter_provider: MeterProvider | None) -> Meter:
    return metrics.get_meter(SCOPE, __version__, meter_provider)


def _store_kind(store: Store | str | None) -> str | None:
    if store is None or isinstance(store, str):
        return store
    return store.name


# ---- events -> counters --------------------------------------------------------------------


class MetricsSubscriber:
    """An ``on_event`` subscriber that counts :class:`~sessionkeeper.SessionEvent`\\ s.

    Made by :func:`subscriber`. Synchronous and cheap (a dict lookup and a counter add per
    event); it never raises for an event it does not know (a newer library's kinds are
    ignored), so it cannot disturb a request.
    """

    def __init__(self, meter: Meter, base: Mapping[str, str]) -> None:
        self._base = dict(base)

        def counter(name: str, unit: str, description: str) -> Counter:
            return meter.create_counter(name, unit=unit, description=description)

        self.created = counter("sessionkeeper.sessions.created", "{session}",
                               "Sessions first saved (new session IDs issued to a client)")
        self.rotated = counter("sessionkeeper.sessions.rotated", "{session}",
                               "Session IDs replaced by a new one for the same session "
                               "(login, renewal, regenerate, anomaly policy)")
        self.destroyed = counter("sessionkeeper.sessions.destroyed", "{session}",
                                 "Sessions deleted by their own request (logout, destroy)")
        self.expired = counter("sessionkeeper.sessions.expired", "{session}",
                               "Expired sessions removed (found dead on access, or purged)")
        self.revoked = counter("sessionkeeper.sessions.revoked", "{session}",
                               "Sessions deleted from outside their request (device page, "
                               "admin, session limit, anomaly policy)")
        self.refused = counter("sessionkeeper.sessions.refused", "{login}",
                               "Logins refused by max_sessions_per_user")
        self.logins = counter("sessionkeeper.logins", "{login}",
                              "Sessions bound to a user (login), new or rotated")
        self.anomalies = counter("sessionkeeper.anomalies", "{anomaly}",
                                 "Suspicious uses of a session (client fingerprint drift)")
        self.probes = counter("sessionkeeper.probes", "{client}",
                              "Client networks that sent more unknown session IDs than the "
                              "probe threshold within its window (ID guessing, replay)")
        # Attribute sets are built once per distinct value and reused: adding to a counter
        # then costs a dict lookup, not a dict build.
        self._attrs: dict[tuple[str, ...], dict[str, str]] = {}

    def _with(self, *pairs: str) -> dict[str, str]:
        attrs = self._attrs.get(pairs)
        if attrs is None:
            attrs = dict(self._base)
            attrs.update(zip(pairs[::2], pairs[1::2], strict=True))
            if len(self._attrs) < 1024:  # bounded even if an app invents many reasons
                self._attrs[pairs] = attrs
        return attrs

    def __call__(self, event: SessionEvent) -> None:
        kind = event.kind
        reason = _safe_reason(event)
        if kind == "created":
            self.created.add(1, self._with())
        elif kind == "rotated":
            self.rotated.add(1, self._with(*_reason_pair(reason)))
        elif kind == "logged_in":
            self.logins.add(1, self._with())
            if "previous" in event.detail:
                # A login in an existing session renames it (the fixation defence); a login
                # with no session before creates one, already counted as "created".
                self.rotated.add(1, self._with(REASON, "login"))
        elif kind == "logged_out":
            self.destroyed.add(1, self._with(REASON, "logout"))
        elif kind == "destroyed":
            self.destroyed.add(1, self._with(REASON, "destroy"))
        elif kind == "expired":
            self.expired.add(1, self._with(*_reason_pair(reason)))
        elif kind == "revoked":
            self.revoked.add(1, self._with(*_reason_pair(reason)))
        elif kind == "refused":
            self.refused.add(1, self._with(*_reason_pair(reason)))
        elif kind == "anomaly":
            if reason == "unknown_ids":
                self.probes.add(1, self._with())
            else:
                policy = event.detail.get("policy", "")
                pairs = _reason_pair(reason)
                if _REASON_RE.fullmatch(policy):
                    pairs += (POLICY, policy)
                self.anomalies.add(1, self._with(*pairs))

    def __repr__(self) -> str:
        return f"<sessionkeeper.otel.MetricsSubscriber {self._base}>"


def _reason_pair(reason: str | None) -> tuple[str, ...]:
    return () if reason is None else (REASON, reason)


def _safe_reason(event: SessionEvent) -> str | None:
    """The event's ``reason`` if it is a short lowercase word that is not this event's user or
    session id; ``"other"`` for anything else; ``None`` when there is none."""
    reason = event.detail.get("reason")
    if reason is None:
        return None
    if (not _REASON_RE.fullmatch(reason) or reason == event.user_id or reason == event.session_id
            or (event.user_id and event.user_id in reason)):
        return "other"
    return reason


def subscriber(
    *,
    meter_provider: MeterProvider | None = None,
    store: Store | str | None = None,
    adapter: str | None = None,
) -> MetricsSubscriber:
    """An ``on_event`` subscriber that counts session events as OpenTelemetry counters.

    ``store`` (a :class:`~sessionkeeper.Store` or its kind, e.g. ``"redis"``) and ``adapter``
    (e.g. ``"asgi"``, ``"flask"``) are added to every data point as
    ``sessionkeeper.store`` / ``sessionkeeper.adapter``, so that several apps or stores
    exporting to one backend can be told apart. Pass it as
    ``SessionConfig(on_event=[...])`` to the middleware and to a ``SessionManager``.
    """
    base: dict[str, str] = {}
    kind = _store_kind(store)
    if kind:
        base[STORE] = kind
    if adapter:
        base[ADAPTER] = adapter
    return MetricsSubscriber(_meter(meter_provider), base)


# ---- store operations -> latency histogram and error counter ---------------------------------

# Store methods that run through ``execute`` on the base class: on the proxy they do the same
# (so they are measured), unless the wrapped store overrides them, in which case its own
# version is called, unmeasured, rather than bypassed.
_BASE_METHODS: Final = ("load", "list_user", "delete", "purge", "count", "scan", "scan_all", "ping", "aping")


class InstrumentedStore(Store):
    """A :class:`~sessionkeeper.Store` that measures another one (made by :func:`instrument`).

    Every ``execute``/``aexecute`` is timed into the ``sessionkeeper.store.operation.duration``
    histogram (seconds; attributes: store kind, operation, and ``error.type`` when it
    failed), and every exception is counted in ``sessionkeeper.store.errors`` by class. The
    result and the exception are passed on untouched.

    Transparent: ``name`` and ``address`` are the wrapped store's, ``close``/``aclose`` close
    it, and any other attribute (a backend's own options and helpers) is read from it.
    ``wrapped`` is the store it measures.
    """

    def __init__(self, store: Store, meter: Meter) -> None:
        self.wrapped = store
        # name is a class attribute on stores; this proxy answers with the wrapped store's.
        self.__dict__["name"] = store.name
        kind = store.name
        self._duration: Histogram = meter.create_histogram(
            "sessionkeeper.store.operation.duration", unit="s",
            description="Duration of session store operations",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._errors: Counter = meter.create_counter(
            "sessionkeeper.store.errors", unit="{error}",
            description="Session store operations that raised, by exception class",
        )
        self._ok_attrs: dict[type, dict[str, str]] = {
            cls: {STORE: kind, OPERATION: op} for cls, op in _OP_NAMES.items()
        }
        self._err_attrs: dict[tuple[type, type], dict[str, str]] = {}
        for method in _BASE_METHODS:
            base = getattr(Store, method, None)
            own = getattr(type(store), method, None)
            if base is not None and own is not None and own is not base:
                self.__dict__[method] = getattr(store, method)

    def _attrs(self, op: Op) -> dict[str, str]:
        attrs = self._ok_attrs.get(type(op))
        if attrs is None:  # an operation a newer core added: measured under its class name
            attrs = self._ok_attrs[type(op)] = {STORE: self.name, OPERATION: type(op).__name__.lower()}
        return attrs

    def _failed(self, op: Op, exc: BaseException, elapsed: float) -> None:
        key = (type(op), type(exc))
        attrs = self._err_attrs.get(key)
        if attrs is None:
            cls = type(exc)
            name = cls.__qualname__
            if cls.__module__ != "builtins":
                name = f"{cls.__module__}.{name}"
            attrs = {**self._attrs(op), ERROR_TYPE: name}
            if len(self._err_attrs) < 256:
                self._err_attrs[key] = attrs
        self._duration.record(elapsed, attrs)
        self._errors.add(1, attrs)

    def execute(self, op: Op) -> Any:
        """Run ``op`` on the wrapped store, measured."""
        started = time.perf_counter()
        try:
            result = self.wrapped.execute(op)
        except BaseException as exc:
            self._failed(op, exc, time.perf_counter() - started)
            raise
        self._duration.record(time.perf_counter() - started, self._attrs(op))
        return result

    async def aexecute(self, op: Op) -> Any:
        """Run ``op`` on the wrapped store's async face, measured."""
        started = time.perf_counter()
        try:
            result = await self.wrapped.aexecute(op)
        except BaseException as exc:
            self._failed(op, exc, time.perf_counter() - started)
            raise
        self._duration.record(time.perf_counter() - started, self._attrs(op))
        return result

    @property
    def address(self) -> str:
        """The wrapped store's address (no password)."""
        return self.wrapped.address

    def close(self) -> None:
        """Close the wrapped store."""
        self.wrapped.close()

    async def aclose(self) -> None:
        """Close the wrapped store from async code."""
        await self.wrapped.aclose()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the proxy lacks; "wrapped" itself may be missing while
        # unpickling or half-built, and must not recurse.
        if name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self.wrapped)))

    def __repr__(self) -> str:
        return f"<instrumented {self.wrapped!r}>"


def instrument(store: Store | str, *, meter_provider: MeterProvider | None = None) -> InstrumentedStore:
    """Wrap ``store`` (a :class:`~sessionkeeper.Store` or a store URL) so that its operations
    are measured; use the result wherever the store was used.

    Metrics: ``sessionkeeper.store.operation.duration`` (histogram, seconds) and
    ``sessionkeeper.store.errors`` (counter), both with ``sessionkeeper.store`` (the store
    kind, e.g. ``"redis"``) and ``sessionkeeper.store.operation`` (``load``, ``create``,
    ``apply``, ``rename``, ``delete``, ``list_user``, ``purge``, ``count``, ``scan``); failures add
    ``error.type`` (the exception's class, e.g. ``sessionkeeper.errors.StoreUnavailable``).
    Wrapping an already instrumented store measures it once more (two proxies), so wrap once.
    """
    if isinstance(store, str):
        store = open_store(store)
    return InstrumentedStore(store, _meter(meter_provider))
