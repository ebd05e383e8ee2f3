"""Settings of the test project; :func:`configure` applies them once per process."""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "test-only-not-secret",
    "ALLOWED_HOSTS": ["testserver", "localhost"],
    "INSTALLED_APPS": [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
    ],
    "MIDDLEWARE": [
        "sessionkeeper.django.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    "ROOT_URLCONF": "tests.frameworks.djproject.urls",
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "USE_TZ": True,
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, tests only
    "SESSION_ENGINE": "sessionkeeper.django",
    "SESSION_COOKIE_SECURE": True,
    "SESSIONKEEPER": {"store": "memory://"},
}


def configure() -> None:
    """Configure Django with :data:`SETTINGS` (once) and set it up."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(**SETTINGS)
        django.setup()
