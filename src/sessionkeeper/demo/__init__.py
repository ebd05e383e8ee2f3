"""The demo site served by ``sessionkeeper demo`` (standard library only)."""
