"""``python -m sessionkeeper`` is the ``sessionkeeper`` command."""

from .cli import main

raise SystemExit(main())
