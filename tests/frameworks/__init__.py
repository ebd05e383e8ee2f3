"""Framework integrations (Django, Quart, Litestar) tested through each framework's own tools."""
