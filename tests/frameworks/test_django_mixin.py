"""Django's own session backend tests (``SessionTestsMixin`` from the installed Django's
source distribution) against ``sessionkeeper.django`` on SQLite, PostgreSQL and Redis.

Nothing of Django's test code is copied here: the mixin is imported from the sdist at test
time (see :mod:`tests.frameworks.sdist`). Its only sibling import, the ``models`` module of a
custom database backend (a model this run has no use for), is replaced by a stub.

Django's ``SessionMiddlewareTests`` from the same file run too, with ``SESSION_ENGINE =
"sessionkeeper.django"``: Django's own middleware on this engine.

Every test passes, except those in :data:`DIFFERENCES`, which are marked by name as
expected failures (an unexpected pass fails the run) and listed with their reasons in
docs/frameworks/django.md, "Differences by design".
"""

from __future__ import annotations

import functools
import importlib
import inspect
import shutil
import sys
import tempfile
import types
import unittest
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from sessionkeeper import Store, open_store
from sessionkeeper.django import SessionStore
from tests import redis_servers
from tests.frameworks import sdist
from tests.stores.backends import postgres, redis

#: mixin test -> why sessionkeeper differs on purpose (the docs' table says the same)
DIFFERENCES: dict[str, str] = {
    "test_session_key_valid_string_saved": (
        "only keys shaped like sessionkeeper's 256-bit tokens are accepted; '12345678' is "
        "refused before it can reach a store (strict session IDs, ASVS 5.0 V7.2.1, V7.2.3)"
    ),
    "test_empty_session_saved": (
        "(SessionMiddlewareTests) reads the saved session back from Django's own database "
        "table (django_session); this engine keeps sessions in the sessionkeeper store"
    ),
}


def load_tests_module() -> Any:
    """``sessions_tests.tests`` from the installed Django's sdist."""
    tests_dir = sdist.source_tree("django", "tests")
    if "sessions_tests.models" not in sys.modules:
        stub = types.ModuleType("sessions_tests.models")
        stub.SessionStore = SessionStore  # type: ignore[attr-defined]  # used only by classes not run here
        sys.modules["sessions_tests.models"] = stub
    if str(tests_dir) not in sys.path:
        sys.path.append(str(tests_dir))
    return importlib.import_module("sessions_tests.tests")


def load_mixin() -> type:
    """``SessionTestsMixin`` from the installed Django's sdist."""
    mixin: type = load_tests_module().SessionTestsMixin
    return mixin


def _mixin_or_stand_in() -> type:
    # Collection must not fail when the sdist cannot be fetched (the tests then skip, or
    # fail under CI=true, through require_service in sdist.source_tree).
    try:
        return load_mixin()
    except BaseException as exc:  # pytest's Skipped/Failed are BaseException
        reason = str(exc)

        class Unavailable:
            def test_mixin_available(self) -> None:
                from tests.conftest import require_service

                require_service("Django's SessionTestsMixin", reason)

        return Unavailable


Mixin = _mixin_or_stand_in()


def mark_differences(cls: type) -> type:
    """Mark each test in :data:`DIFFERENCES` as an expected failure, by name."""
    for name in DIFFERENCES:
        method = getattr(cls, name, None)
        if method is not None:
            setattr(cls, name, unittest.expectedFailure(method))
    return cls


class PerLoop(Store):
    """The sync face of one store object, the async face of another opened per event loop.

    Django runs each async test in an event loop of its own, and an async connection pool
    belongs to the loop it was opened in (one store per event loop, as under an ASGI server):
    each async test gets a fresh store object on the same table or key prefix, closed in its
    loop by :meth:`release`.
    """

    name = "per-loop"

    def __init__(self, sync: Store, opener: Any) -> None:
        self.sync = sync
        self.opener = opener
        self.current: Store | None = None

    def execute(self, op: Any) -> Any:
        return self.sync.execute(op)

    async def aexecute(self, op: Any) -> Any:
        if self.current is None:
            self.current = self.opener()
        return await self.current.aexecute(op)

    async def release(self) -> None:
        current, self.current = self.current, None
        if current is not None:
            await current.aclose()


def released(method: Any) -> Any:
    """An async test that closes its loop's store object when it ends."""

    @functools.wraps(method)
    async def run(self: Any) -> None:
        try:
            await method(self)
        finally:
            await self.store.release()

    return run


class _OnStore(Mixin, SimpleTestCase):  # type: ignore[misc, valid-type]
    """The mixin on one store: a sync store object for the class, one per async test."""

    __test__ = False
    backend: Any = None
    store: ClassVar[PerLoop]
    _cleanups: ClassVar[list[Any]]

    @classmethod
    def open(cls) -> tuple[Any, Any]:
        """``(opener of a store object, cleanup)``; the cleanup removes what the test wrote."""
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        opener, cleanup = cls.open()
        cls._cleanups = [cleanup]
        sync = opener()
        cls._cleanups.insert(0, sync.close)
        cls.store = PerLoop(sync, opener)
        cls.backend = SessionStore.bind(cls.store)

    @classmethod
    def tearDownClass(cls) -> None:
        for cleanup in cls._cleanups:
            cleanup()
        super().tearDownClass()


def on_store(cls: type) -> type:
    """Mark the differences, and make every async test release its loop's store object."""
    for name in dir(cls):
        method = getattr(cls, name)
        if name.startswith("test_") and inspect.iscoroutinefunction(method):
            setattr(cls, name, released(method))
    cls.__test__ = True  # type: ignore[attr-defined]
    return mark_differences(cls)


@on_store
class TestDjangoMixinSQLite(_OnStore):
    @classmethod
    def open(cls) -> tuple[Any, Any]:
        tmp = Path(tempfile.mkdtemp(prefix="sk-django-"))
        url = "sqlite:///" + quote(str(tmp / "sessions.db"))
        return (lambda: open_store(url)), (lambda: shutil.rmtree(tmp, ignore_errors=True))


@on_store
class TestDjangoMixinPostgres(_OnStore):
    @classmethod
    def open(cls) -> tuple[Any, Any]:
        postgres.require_postgres()
        table = postgres.new_table()
        open_store(postgres.URL, table=table, create_schema=True, max_size=1).close()
        def opener() -> Store:
            return open_store(postgres.URL, table=table, max_size=2)

        return opener, (lambda: postgres.drop_table(table))


@on_store
class TestDjangoMixinRedis(_OnStore):
    @classmethod
    def open(cls) -> tuple[Any, Any]:
        redis.require_redis()
        prefix = redis.new_prefix()

        def cleanup() -> None:
            redis_servers.delete_prefix(redis.primaries("redis"), prefix)

        return (lambda: open_store(redis.URL, prefix=prefix, socket_timeout=10)), cleanup


def _middleware_tests_or_stand_in() -> type:
    if Mixin.__name__ == "Unavailable":
        return Mixin
    return load_tests_module().SessionMiddlewareTests  # type: ignore[no-any-return]


@override_settings(SESSION_ENGINE="sessionkeeper.django", SESSIONKEEPER={"store": "memory://"}, MIDDLEWARE=[])
class TestDjangoSessionMiddleware(_middleware_tests_or_stand_in()):  # type: ignore[misc]
    """Django's ``SessionMiddlewareTests`` with this engine configured in the settings."""

    @classmethod
    def setUpClass(cls) -> None:
        # One of them saves through Django's database backend: its table must exist.
        call_command("migrate", run_syncdb=True, verbosity=0)
        super().setUpClass()


mark_differences(TestDjangoSessionMiddleware)
