#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+:

    python3 dev.py demo    # the demo site on http://127.0.0.1:8000 (SQLite store)
    python3 dev.py test    # ruff, mypy --strict, the docs build, and the whole pytest suite
    python3 dev.py docs    # the documentation site on http://127.0.0.1:8001 (mkdocs serve)

Both create ``.venv`` beside this file on first use and install the project into it (again
only when pyproject.toml changes). Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"sessionkeeper needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating virtual environment in {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing sessionkeeper[{extras}] into {VENV} …", flush=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-U", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[{extras}]"], check=True)
    stamp.write_text(digest)


def run(*cmd: str, env: dict[str, str] | None = None) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=None if env is None else {**os.environ, **env})


# mkdocs prints a banner about its future on every run; the build itself is all we want to see.
DOCS_ENV = {"NO_MKDOCS_2_WARNING": "1"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "docs"):
        print(__doc__)
        return 2
    if argv[0] == "demo":
        ensure_env("demo")
        return run(str(BIN / "sessionkeeper"), "demo", *argv[1:])
    ensure_env("dev")
    if argv[0] == "docs":
        return run(str(PY), "-m", "mkdocs", "serve", "-a", "127.0.0.1:8001", *argv[1:], env=DOCS_ENV)
    failed = 0
    failed |= run(str(PY), "-m", "ruff", "check", "src", "tests", "bench", "dev.py") != 0
    failed |= run(str(PY), "-m", "mypy") != 0
    # The docs site, warnings as errors (mkdocs.yml: strict). Offline: no fonts, CDN or plugins
    # that fetch at build time. The output (site/) is not committed.
    failed |= run(str(PY), "-m", "mkdocs", "build", "--strict", env=DOCS_ENV) != 0
    code = run(str(PY), "-m", "pytest", *argv[1:])
    if code != 0:
        return code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
