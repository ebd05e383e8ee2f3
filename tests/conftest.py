"""Shared test helpers.

Services (PostgreSQL, Redis) are optional on a developer's machine: tests that need a missing
one are skipped with a reason. Under ``CI=true`` a missing service fails the run instead.
"""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(what: str, reason: str) -> None:
    """Skip (locally) or fail (under CI=true) because ``what`` is not available."""
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required, not skipped)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
