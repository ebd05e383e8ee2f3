"""Browser test fixtures: a module-scoped headless Chromium (Debian's, driven by Playwright)
and a loopback server for a WSGI app."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from sessionkeeper.demo.app import _Server

from ..conftest import free_port, require_service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(app: Any) -> Iterator[str]:
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", "pip install playwright (in the dev extra)")
    if not shutil.which("chromium") and not shutil.which(CHROMIUM):
        require_service("chromium", "apt-get install chromium (.ci/run does this)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
