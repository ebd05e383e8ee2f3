"""Session stores: where session records live. :func:`open_store` picks one by URL."""

from .base import Store, open_store

__all__ = ["Store", "open_store"]
