"""Bodies of the few responses the middleware answers by itself (shared by the adapters)."""

UNAVAILABLE = b"Session store unavailable; try again shortly.\n"
CSRF_REFUSED = b"Cross-site request refused (CSRF protection).\n"
