"""core/ stays pure: no sockets, files, threads or asyncio, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sessionkeeper.core

# Top-level modules that do I/O, run concurrently or reach outside the process.
FORBIDDEN = {
    "asyncio", "concurrent", "ctypes", "fcntl", "ftplib", "glob", "http", "io", "mmap",
    "multiprocessing", "os", "pathlib", "pickle", "select", "selectors", "shelve", "shutil",
    "signal", "smtplib", "socket", "socketserver", "sqlite3", "ssl", "subprocess", "tempfile",
    "threading", "urllib", "_thread",
}
# Submodules of forbidden packages that only compute on strings.
ALLOWED_MODULES = {"urllib.parse"}
# Inside the package, core may lean only on itself and on the error hierarchy.
ALLOWED_PARENT = {"errors"}
# Builtins that open files or run code.
FORBIDDEN_CALLS = {"open", "exec", "eval", "__import__", "input"}

CORE_DIR = Path(sessionkeeper.core.__file__).parent
MODULES = sorted(path.stem for path in CORE_DIR.glob("*.py"))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN and alias.name not in ALLOWED_MODULES:
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
                if module.split(".")[0] in FORBIDDEN | {"sessionkeeper"} and module not in ALLOWED_MODULES:
                    found.append(f"from {node.module} import ...")
            elif node.level >= 2:
                target = (node.module or "").split(".")[0]
                if node.level > 2 or target not in ALLOWED_PARENT:
                    found.append(f"from {'.' * node.level}{node.module or ''} import ...")
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"call to {node.func.id}()")
    return found


def test_core_has_modules() -> None:
    # Guards the parametrization below against silently checking nothing.
    assert {"ids", "cookies", "clock", "codec", "records", "session", "config", "flow"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    assert _violations(CORE_DIR / f"{module}.py") == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import socket", ["import socket"]),
        ("import os.path", ["import os.path"]),
        ("from asyncio import sleep", ["from asyncio import ..."]),
        ("from threading import Lock", ["from threading import ..."]),
        ("from ..stores import base", ["from ..stores import ..."]),
        ("from sessionkeeper.asgi import x", ["from sessionkeeper.asgi import ..."]),
        ("open('x')", ["call to open()"]),
        ("from ..errors import ConfigError\nfrom . import ids\nimport re", []),
    ],
)
def test_checker_catches_violations(tmp_path: Path, source: str, expected: list[str]) -> None:
    # The checker itself must be able to fail.
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _violations(path) == expected
