"""The installed version's source distribution, fetched once and cached: frameworks keep their
own test suites out of their wheels, and this project runs them without copying them in.

``pip download <name>==<installed version> --no-binary :all: --no-deps`` into
``.venv/sdists`` (or ``$SESSIONKEEPER_SDIST_CACHE``), unpacked next to it. Without network the
tests that need it are skipped locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SESSIONKEEPER_SDIST_CACHE", ROOT / ".venv" / "sdists"))


def source_tree(dist: str, member: str) -> Path:
    """The unpacked directory ``<dist>-<installed version>/<member>`` of the sdist."""
    ver = version(dist)
    top = CACHE / f"{dist.lower()}-{ver}"
    target = top / member
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"{dist.lower()}-{ver}.tar.gz"
    if not archive.exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{dist}=={ver}", "--no-binary", ":all:",
             "--no-deps", "--quiet", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0 or not archive.exists():
            require_service(f"{dist} {ver} source distribution", (done.stderr or done.stdout)[-500:])
    prefix = f"{archive.name.removesuffix('.tar.gz')}/{member}"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name == prefix or m.name.startswith(prefix + "/")]
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and paths outside
            tar.extractall(CACHE, members=members, filter="data")
        else:  # pragma: no cover - older 3.11 patch releases
            tar.extractall(CACHE, members=members)
    assert target.exists(), f"{member} not in {archive.name}"
    return target
