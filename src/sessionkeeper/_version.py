"""The package version, kept in one place: ``pyproject.toml``'s ``[project] version``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("sessionkeeper")
except PackageNotFoundError:  # pragma: no cover - running from a source tree never installed
    # Not installed (e.g. src/ on sys.path by hand): say so rather than guess a number.
    __version__ = "0+unknown"
