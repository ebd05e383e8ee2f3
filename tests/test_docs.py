"""Every ```python block in README.md and docs/**/*.md runs here, so no snippet can rot.

How a page runs (one test per page):

- Its python blocks run in order, in one fresh namespace per page (a later block may use what
  an earlier one defined), in a fresh temporary working directory (so ``sqlite:///sessions.db``
  works as written and leaves nothing behind).
- Placeholders the docs name as "your code" (``check_password``, ``load_user`` …) are put in
  the namespace by :mod:`tests.docs_support`.
- Store URLs written in a snippet are pointed at the test services, keeping what the snippet
  says: ``redis://…`` goes to 127.0.0.1:6379 under a unique key prefix; ``postgresql://…`` to
  the ``test`` database, in a schema of its own first on the ``search_path``; ``file:///…`` and
  ``sqlite:////…`` (absolute paths) under the temporary directory. The keys and the schema are
  deleted afterwards. A page that needs a service that is not running is skipped, and fails
  under ``CI=true``.
- An HTML comment on the line before a fence changes how the block is treated (keep them rare):
  ``<!-- snippet: skip <reason> -->`` (not run; listed by ``test_snippet_inventory``),
  ``<!-- snippet: check <name> -->`` (run, then ``docs_support.CHECKS[name](namespace)``
  exercises the app it defines, e.g. through a test client with an https base URL),
  ``<!-- snippet: raises <ExceptionName> -->`` (the block must raise that exception).
- A block that defines ``test_*`` functions taking no arguments has them called at once (async
  ones in a fresh event loop); a whole pytest module (fixtures and all) is run by pytest itself
  through ``<!-- snippet: check pytest-file -->``.
- A block that defines an app (binds ``app`` or ``application`` to a Flask app, an ASGI/WSGI
  callable …) must be exercised: by a ``check`` marker, or by a later block of the same page
  that drives it through a test client.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import secrets
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from tests import docs_support

# Starlette >= 1.0 asks for httpx2 under its TestClient and warns (an error here) when it finds
# httpx instead; the dev extras install httpx. The snippets are what is tested, not that choice.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON = {"python", "py", "python3"}
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(skip|check|raises)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
APP_NAMES = ("app", "application")
DRIVERS = ("TestClient(", ".test_client(", "docs_support.", "Client(")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # "skip", "check", "raises" or None
    argument: str  # the reason / check name / exception name

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a markdown page (any language), with its marker."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        marker, argument = None, ""
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (mm := MARKER.match(lines[j])):
            marker, argument = mm.group(1), mm.group(2)
        elif j >= 0 and "<!--" in lines[j] and "snippet" in lines[j]:
            raise AssertionError(f"{page.relative_to(ROOT)}:{j + 1}: malformed snippet marker {lines[j]!r}")
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker, argument))
    return out


def python_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in PYTHON]


PAGES_WITH_PYTHON = [p for p in PAGES if python_blocks(p)]


# ---- store URLs -> test services -------------------------------------------------------------

PREFIX_RE = re.compile(r"""(\bprefix\s*=\s*["'])([^"']*["'])""")
URL_RE = re.compile(r"""(?P<q>["'])(?P<url>(?:redis|postgresql|postgres|file|sqlite)://[^"']*)(?P=q)""")


@dataclass
class Services:
    tmp: Path
    tag: str
    redis_prefixes: set[str]
    pg_schemas: set[str]

    @property
    def redis_prefix(self) -> str:
        return f"skdocs:{self.tag}:"

    def rewrite(self, code: str) -> str:
        code = URL_RE.sub(lambda m: m.group("q") + self.url(m.group("url")) + m.group("q"), code)
        if self.redis_prefixes:
            # open_store(url, prefix="myapp:"): the keyword wins over the URL, so move it too.
            code = PREFIX_RE.sub(lambda m: f"{m.group(1)}{self.redis_prefix}{m.group(2)}", code)
        return code

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        scheme = parts.scheme
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if scheme == "redis":
            from tests.stores.backends import redis as redis_backend

            redis_backend.require_redis()
            self.redis_prefixes.add(self.redis_prefix)
            query["prefix"] = self.redis_prefix + query.get("prefix", "")
            db = parts.path or "/0"
            return f"redis://{redis_backend.HOST}:{redis_backend.PORT}{db}?{urlencode(query)}"
        if scheme in ("postgresql", "postgres"):
            # A schema of its own, first on the search_path: the snippet's table names (the
            # default one included) work as written, and psycopg.connect() sees them too.
            from tests.stores.backends import postgres as pg_backend

            pg_backend.require_postgres()
            schema = f"skdocs_{self.tag}"
            if schema not in self.pg_schemas:
                with pg_backend.admin() as conn:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                self.pg_schemas.add(schema)
            query["options"] = f"-c search_path={schema}"
            base = pg_backend.URL.split("?")[0]
            return f"{base}?{urlencode(query, quote_via=quote)}"
        if scheme == "file":
            return "file://" + str(self.tmp / "files" / parts.path.lstrip("/"))
        if scheme == "sqlite" and parts.path.startswith("//"):  # sqlite:////absolute/path.db
            target = self.tmp / "sqlite" / parts.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return "sqlite:///" + str(target)
        return url

    def cleanup(self) -> None:
        if self.redis_prefixes:
            from tests import redis_servers
            from tests.stores.backends import redis as redis_backend

            for prefix in self.redis_prefixes:
                redis_servers.delete_prefix(redis_backend.primaries("redis"), prefix)
        if self.pg_schemas:
            from tests.stores.backends import postgres as pg_backend

            with pg_backend.admin() as conn:
                for schema in self.pg_schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---- running a page --------------------------------------------------------------------------


def _is_app(value: Any) -> bool:
    return callable(value) and not isinstance(value, type)


def _drivers_after(page_blocks: list[Block], index: int) -> bool:
    return any(any(d in b.code for d in DRIVERS) for b in page_blocks[index + 1:] if b.marker != "skip")


def _close_everything(namespace: dict[str, Any]) -> None:
    """Close the stores a page opened (their pools and files), wherever the page keeps them."""
    from sessionkeeper import Store

    seen: set[int] = set()
    stores: list[Store] = []

    def visit(value: Any, depth: int = 0) -> None:
        if id(value) in seen or depth > 4:
            return
        seen.add(id(value))
        if isinstance(value, Store):
            stores.append(value)
            return
        for attr in ("store", "session_interface", "app", "middleware_stack", "extensions"):
            try:
                inner = getattr(value, attr, None)
            except Exception:  # e.g. a framework's context-local proxy outside a request
                continue
            if inner is not None and not isinstance(inner, str | bytes | int | float):
                visit(inner, depth + 1)
        if isinstance(value, dict):
            for v in value.values():
                visit(v, depth + 1)

    for value in list(namespace.values()):
        visit(value)
    for store in stores:
        store.close()


def run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run a page's python blocks; return what it skipped (``where: reason``)."""
    page_blocks = python_blocks(page)
    services = Services(tmp_path, secrets.token_hex(4), set(), set())
    work = tmp_path / "cwd"
    work.mkdir(mode=0o700)
    monkeypatch.chdir(work)
    # The page's namespace is a module in sys.modules: frameworks that resolve a handler's
    # annotations through sys.modules[fn.__module__] (Litestar) need it, as in a real app.
    module = types.ModuleType("docs_snippet")
    sys.modules["docs_snippet"] = module
    namespace: dict[str, Any] = module.__dict__
    namespace["__builtins__"] = __builtins__
    namespace.update(docs_support.placeholders(page.relative_to(ROOT).as_posix(), tmp_path))
    skipped: list[str] = []
    unexercised: list[str] = []
    try:
        for index, block in enumerate(page_blocks):
            if block.marker == "skip":
                assert block.argument, f"{block.where}: a skip marker must give its reason"
                skipped.append(f"{block.where}: {block.argument}")
                continue
            code = services.rewrite(block.code)
            before = {name: id(namespace.get(name)) for name in APP_NAMES}
            compiled = compile(code, block.where, "exec")
            if block.marker == "raises":
                expected = _exception(block)
                with pytest.raises(expected):
                    exec(compiled, namespace)
                continue
            defined_before = set(namespace)
            try:
                exec(compiled, namespace)
                _run_new_tests(namespace, defined_before)
            except Exception as exc:
                raise AssertionError(f"snippet at {block.where} failed: {exc!r}") from exc
            if block.marker == "check":
                check = docs_support.CHECKS.get(block.argument)
                assert check is not None, f"{block.where}: no check named {block.argument!r} in docs_support"
                try:
                    check(namespace, code, tmp_path)
                except Exception as exc:
                    message = f"check {block.argument!r} of {block.where} failed: {exc!r}"
                    raise AssertionError(message) from exc
                continue
            for name in APP_NAMES:
                if (
                    id(namespace.get(name)) != before[name]
                    and _is_app(namespace.get(name))
                    and not _drivers_after(page_blocks, index)
                ):
                    unexercised.append(f"{block.where} defines {name!r} but nothing exercises it")
    finally:
        try:
            _close_everything(namespace)
        finally:
            services.cleanup()
    assert not unexercised, "; ".join(unexercised)
    return skipped


def _run_new_tests(namespace: dict[str, Any], defined_before: set[str]) -> None:
    """Call the ``test_*`` functions a block just defined that take no arguments (a test the
    docs show is a test the suite runs); ones taking fixtures need the ``pytest-file`` check."""
    for name in [n for n in namespace if n not in defined_before and n.startswith("test_")]:
        fn = namespace[name]
        if not inspect.isfunction(fn) or inspect.signature(fn).parameters:
            continue
        result = fn()
        if inspect.iscoroutine(result):
            asyncio.run(result)


def _exception(block: Block) -> type[BaseException]:
    import builtins

    import sessionkeeper

    name = block.argument
    exc = getattr(sessionkeeper, name, None) or getattr(builtins, name, None)
    assert isinstance(exc, type), f"{block.where}: unknown exception {name!r}"
    assert issubclass(exc, BaseException), f"{block.where}: {name!r} is not an exception"
    return exc


@pytest.fixture(autouse=True)
def _no_leaked_loop() -> Iterator[None]:
    # Starlette's TestClient runs its own loops; make sure a page leaves no current loop set.
    yield
    asyncio.set_event_loop(None)


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of ``page`` runs, and every app it defines answers as the page says."""
    modules = set(sys.modules)
    try:
        run_page(page, tmp_path, monkeypatch)
    finally:
        # Snippets may import example modules by name; do not let one page see another's.
        for name in set(sys.modules) - modules:
            if name.startswith("docs_snippet"):
                del sys.modules[name]


def test_snippet_inventory() -> None:
    """Counts the runnable and skipped blocks; skips are rare and each gives its reason."""
    run, skipped = 0, []
    for page in PAGES:
        for block in python_blocks(page):
            if block.marker == "skip":
                assert block.argument, f"{block.where}: a skip marker must give its reason"
                skipped.append(f"{block.where}: {block.argument}")
            else:
                run += 1
    print(f"\n{run} python snippets run, {len(skipped)} skipped:")
    for line in skipped:
        print("  skipped", line)
    assert run >= 20, "the docs lost their examples?"
    assert len(skipped) <= max(3, run // 10), "too many skipped snippets: make them runnable"


def test_every_fence_names_its_language() -> None:
    """A fence without a language would escape this test: shell is ``sh``, Python ``python``."""
    bare = [b.where for page in PAGES if page.name != "performance.md" for b in blocks(page) if not b.lang]
    assert not bare, f"fences without a language: {bare}"


def test_markers_only_before_python_blocks() -> None:
    stray = [b.where for page in PAGES for b in blocks(page) if b.marker and b.lang not in PYTHON]
    assert not stray, f"snippet markers before non-python fences: {stray}"


def test_block_parser_finds_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "x.md"
    page.write_text(
        "text\n\n<!-- snippet: skip shown out of context -->\n```python\nx = 1\n```\n\n"
        "1. item\n\n    ```python\n    y = 2\n    ```\n\n```sh\nls\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.marker, b.argument, b.code) for b in found] == [
        ("python", "skip", "shown out of context", "x = 1\n"),
        ("python", None, "", "y = 2\n"),
        ("sh", None, "", "ls\n"),
    ]


def test_url_rewriting_keeps_the_snippets_choices(tmp_path: Path) -> None:
    services = Services(tmp_path, "t1", set(), set())
    code = 'open_store("file:///var/lib/myapp/sessions")\nopen_store("sqlite:///sessions.db")\n'
    out = services.rewrite(code)
    assert f'"file://{tmp_path}/files/var/lib/myapp/sessions"' in out
    assert '"sqlite:///sessions.db"' in out  # relative: inside the temporary working directory


def _documented_options() -> dict[str, str]:
    """``docs/options.md``'s table: option name -> the first code span of its default cell."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "options.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (m := re.fullmatch(r"`(\w+)`", cells[0])):
            default = re.search(r"`([^`]*)`", cells[1])
            assert default, f"option {m.group(1)}: its default cell has no `code`"
            assert m.group(1) not in rows, f"option {m.group(1)} documented twice"
            rows[m.group(1)] = default.group(1)
    return rows


def test_options_page_documents_every_option_with_its_default() -> None:
    """docs/options.md lists exactly SessionConfig's options, each with the code's default."""
    import ast
    from dataclasses import MISSING, fields

    from sessionkeeper import SessionConfig

    documented = _documented_options()
    actual = {f.name: f for f in fields(SessionConfig) if f.init}
    assert sorted(set(actual) - set(documented)) == [], "options missing from docs/options.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/options.md lists options the code lacks"
    wrong = []
    for name, f in actual.items():
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        text = documented[name]
        if callable(default):
            ok = text.split(".")[-1] == default.__name__
        else:
            try:
                ok = ast.literal_eval(text) == default and type(ast.literal_eval(text)) is type(default)
            except (ValueError, SyntaxError):
                ok = False
        if not ok:
            wrong.append(f"{name}: docs say `{text}`, code has {default!r}")
    assert not wrong, "; ".join(wrong)


def test_docs_site_builds_strict_and_offline(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes (a broken link or anchor, a page missing from the nav
    fails it), and the built pages load nothing from another host (no web fonts, CDN scripts or
    analytics): the docs build and read offline."""
    import os
    import subprocess

    out = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)
    loads = []
    for page in out.rglob("*.html"):
        for m in remote.finditer(page.read_text(encoding="utf-8")):
            tag = m.group(0)
            if tag.lower().startswith("<link") and "stylesheet" not in tag and "preconnect" not in tag:
                continue  # a plain hyperlink-like <link rel="canonical"> loads nothing
            loads.append(f"{page.relative_to(out)}: {tag}")
    assert not loads, loads[:10]
    for name in ("reference/api.html", "options.html", "security.html", "changelog.html"):
        assert (out / name).is_file(), name
    api = (out / "reference" / "api.html").read_text(encoding="utf-8")
    assert "open_store" in api and "SessionConfig" in api, "the API reference lost its members"


def test_cli_lines_in_docs_parse(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``sessionkeeper …`` line of a shell block names a real command and real options
    (parsed by the CLI's own parser, not run)."""
    import shlex

    from sessionkeeper.cli import build_parser

    checked, wrong = 0, []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in ("sh", "bash", "console", "shell"):
                continue
            for line in block.code.splitlines():
                words = shlex.split(line, comments=True)
                if not words or words[0] != "sessionkeeper":
                    continue
                checked += 1
                try:
                    build_parser().parse_args(words[1:])
                except SystemExit as exc:  # argparse exits on errors (2) and on --version (0)
                    if exc.code != 0:
                        wrong.append(f"{block.where}: {line.strip()}")
    capsys.readouterr()
    assert checked >= 5, "no CLI examples found"
    assert not wrong, wrong


def test_readme_links_resolve() -> None:
    """README.md, SECURITY.md and CHANGELOG.md are read on GitHub, outside the docs build: their
    relative links must point at files that exist (and anchors at headings that exist)."""
    broken = []
    for name in ("README.md", "SECURITY.md", "CHANGELOG.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            file = ROOT / path if path else ROOT / name
            if not file.is_file():
                broken.append(f"{name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+\s+(.+?)\s*$", file.read_text(encoding="utf-8"), re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
                if anchor not in slugs:
                    broken.append(f"{name}: {target} (no such heading)")
    assert not broken, broken


def test_postgres_ddl_shown_in_stores_page_is_current() -> None:
    """The PostgreSQL table shown in docs/stores.md is exactly what ``ddl()`` produces."""
    from sessionkeeper.stores.postgres import ddl

    shown = [b.code for b in blocks(ROOT / "docs" / "stores.md") if b.lang == "sql"]
    assert shown == [ddl()], "docs/stores.md's SQL block differs from ddl(): paste ddl()'s output"
