"""One module per store backend used by the conformance suite.

Each module defines ``NAMES`` (the parametrize ids it offers, e.g. ``["sqlite", "sqlite-memory"]``)
and a context manager ``open(name, tmp_path) -> Iterator[Store]`` that yields a fresh, empty
store and cleans it up afterwards. It calls ``tests.conftest.require_service`` when its server
is missing. Adding a store to the suite means adding a module here, nothing else.
"""
