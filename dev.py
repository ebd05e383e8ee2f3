#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+:

    python3 dev.py demo    # the demo site on http://127.0.0.1:8000 (SQLite store)
    python3 dev.py test    # ruff, mypy --strict, and the whole pytest suite

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


def run(*cmd: str) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    if argv[0] == "demo":
        ensure_env("demo")
        return run(str(BIN / "sessionkeeper"), "demo", *argv[1:])
    ensure_env("dev")
    failed = 0
    failed |= run(str(PY), "-m", "ruff", "check", "src", "tests", "bench", "dev.py") != 0
    failed |= run(str(PY), "-m", "mypy") != 0
    code = run(str(PY), "-m", "pytest", *argv[1:])
    if code != 0:
        return code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
