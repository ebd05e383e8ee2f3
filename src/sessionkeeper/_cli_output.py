"""What the command line prints: tables, relative times, histograms and a progress display.

Tables and the progress bar use ``rich`` when it is installed (the ``[cli]`` extra) and a plain
text fallback otherwise; both say the same things, so scripts should use ``--json`` rather
than parse either. Nothing here touches a store.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, TextIO


def rich_module(name: str = "rich") -> ModuleType | None:
    """``rich`` (or one of its modules), or ``None`` when the ``[cli]`` extra is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---- times -------------------------------------------------------------------------------

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def span(seconds: float) -> str:
    """A duration in at most two units: ``"2 h 5 min"``, ``"40 s"``, ``"3 d 4 h"``."""
    s = int(abs(seconds))
    if s < 1:
        return "0 s"
    for i, (size, unit) in enumerate(_UNITS):
        if s >= size:
            n, rest = divmod(s, size)
            text = f"{n} {unit}"
            if i + 1 < len(_UNITS) and size >= 60:
                m = rest // _UNITS[i + 1][0]
                if m:
                    text += f" {m} {_UNITS[i + 1][1]}"
            return text
    return "0 s"  # pragma: no cover - the loop returns


def elapsed(seconds: float) -> str:
    """A job's duration: ``"0.4 s"`` under ten seconds, :func:`span` above."""
    return f"{seconds:.1f} s" if seconds < 10 else span(seconds)


def relative(ts: float | None, now: float) -> str:
    """``"5 min ago"``, ``"in 29 min"``, ``"just now"``; ``"-"`` for ``None``."""
    if ts is None:
        return "-"
    delta = ts - now
    if abs(delta) < 2:
        return "just now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def iso(ts: float | None) -> str | None:
    """UTC, to the second, ISO 8601 with a ``Z``: for ``--json`` and tooltips."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---- tables ------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO,
          title: str | None = None) -> None:
    """Print ``rows`` under ``headers``: a rich table when available, aligned text otherwise."""
    rich_console = rich_module("rich.console")
    rich_table = rich_module("rich.table")
    if rich_console is not None and rich_table is not None:
        # Off a terminal, wide enough that a row never wraps (greppable lines in logs and pipes).
        console = rich_console.Console(file=out, width=_width(out), highlight=False)
        if title:
            console.print(title, markup=False)
        t = rich_table.Table(box=None, header_style="bold", pad_edge=False)
        for h in headers:
            t.add_column(h, no_wrap=not is_tty(out), overflow="fold")
        for row in rows:
            t.add_row(*(_escape(c) for c in row))
        console.print(t)
        return
    plain_table(headers, rows, out, title)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO,
                title: str | None = None) -> None:
    """The fallback: columns padded to their widest cell, two spaces apart."""
    if title:
        print(title, file=out)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _escape(text: str) -> str:
    markup = rich_module("rich.markup")
    return markup.escape(text) if markup is not None else text


def _width(out: TextIO) -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns if is_tty(out) else 250


def histogram(title: str, buckets: Sequence[tuple[str, int]], out: TextIO, width: int = 30) -> None:
    """A terminal bar chart: one line per bucket, ``█`` scaled to the largest."""
    print(title, file=out)
    top = max((n for _, n in buckets), default=0)
    label_w = max((len(label) for label, _ in buckets), default=0)
    count_w = max((len(f"{n:,}") for _, n in buckets), default=1)
    for label, n in buckets:
        bar = "█" * (math.ceil(n * width / top) if top and n else 0)
        print(f"  {label.rjust(label_w)}  {f'{n:,}'.rjust(count_w)}  {bar}".rstrip(), file=out)


# ---- progress ----------------------------------------------------------------------------


class Progress:
    """Progress of a long job over ``total`` items: a rich bar (or a ``\\r`` line) with rate and
    ETA on a terminal, one plain line per ``update`` otherwise (logs, pipes, cron mail)."""

    def __init__(self, what: str, total: int, out: TextIO, *, tty: bool | None = None) -> None:
        self.what, self.total, self.out = what, max(0, total), out
        self.done = 0
        self.started = time.monotonic()
        self.tty = is_tty(out) if tty is None else tty
        self._rich: Any = None
        if self.tty:
            rp = rich_module("rich.progress")
            rc = rich_module("rich.console")
            if rp is not None and rc is not None:
                self._rich = rp.Progress(
                    rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                    rp.TextColumn("{task.fields[rate]}"), rp.TimeRemainingColumn(),
                    console=rc.Console(file=out), transient=False,
                )
                self._task = self._rich.add_task(what, total=self.total or None, rate="")
                self._rich.start()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        r = self.rate()
        left = max(0, self.total - self.done)
        return span(left / r) if r > 0 and left else "-"

    def update(self, done: int) -> None:
        self.done = done
        rate = f"{self.rate():,.0f}/s"
        if self._rich is not None:
            self._rich.update(self._task, completed=min(done, self.total) if self.total else done,
                              rate=rate)
            return
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        text = f"{self.what}: {done:,}/{self.total:,}{pct}, {rate}, ETA {self.eta()}"
        if self.tty:
            filled = int(20 * min(done, self.total) / self.total) if self.total else 0
            print(f"\r[{'#' * filled}{'.' * (20 - filled)}] {text}", end="", file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self.tty:
            print(file=self.out)


def stderr_is_tty() -> bool:
    return is_tty(sys.stderr)
