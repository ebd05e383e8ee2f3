"""A tiny Django project for the backend's tests: auth, login, logout, password change, devices.

Its settings are applied by :func:`tests.frameworks.djproject.settings.configure` (Django can be
configured once per process, so every Django test module shares them).
"""
