"""Django is configured once per process: every Django test here shares the test project's
settings (tests override what they need with ``override_settings`` or ``SessionStore.bind``)."""

from __future__ import annotations

from tests.frameworks.djproject.settings import configure

configure()
