"""Adversarial tests, one module per OWASP ASVS 5.0 V7 / WSTG-SESS area.

Each test names the requirement it covers (``test_v7_2_1_...`` or in its docstring), so a reader
sees at a glance what is covered; see ``tests/security/README.md`` for the map.
"""
