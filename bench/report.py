"""Write docs/performance.md and docs/performance.png from a bench result (bench/results/latest.json).

Run by ``python3 bench/run.py --docs`` inside bench/.venv (matplotlib lives there); it can also
be run alone: ``bench/.venv/bin/python bench/report.py bench/results/latest.json``, or, to look
at the page without touching docs/, ``python3 bench/report.py --out /tmp/performance.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from breakdown import breakdown_tables
from run import REPO, Row, counts_table, load_table, lost_table

DOC = REPO / "docs" / "performance.md"
PLOT = REPO / "docs" / "performance.png"
NOTES = REPO / "bench" / "notes.md"  # hand-written reading of the numbers, appended as is
# Hand-written sections of the page that no harness writes (bench/scale.py's figures), kept
# from the current page when it is rewritten.
KEPT = ("## Million sessions",)


def plot(rows: list[Row], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.variant for r in rows if r.rps == r.rps))
    by = {(r.variant, r.workload): r for r in rows}
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(names) + 1.6))
    height = 0.38
    for i, workload in enumerate(("read", "write")):
        ys = [k + (i - 0.5) * height for k in range(len(names))]
        vals = [by[(n, workload)].rps if (n, workload) in by else 0 for n in names]
        colors = [
            ("#2b6cb0" if "/sk-" in n else "#a0aec0" if n.endswith("/none") else "#dd6b20")
            if workload == "read"
            else ("#90cdf4" if "/sk-" in n else "#e2e8f0" if n.endswith("/none") else "#fbd38d")
            for n in names
        ]
        ax.barh(ys, vals, height=height, color=colors, edgecolor="#4a5568", linewidth=0.4)
        for y, v in zip(ys, vals, strict=True):
            ax.text(v, y, f" {v:.0f} {workload}", va="center", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("requests per second (median of rounds; server pinned to one core)")
    ax.set_title(title, fontsize=9)
    ax.margins(x=0.18)
    fig.text(
        0.01,
        0.005,
        "blue: sessionkeeper; orange: peers; grey: no session. Dark bar: /read, light bar: /write.",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(out, dpi=110)


def document(res: dict[str, Any], rows: list[Row]) -> str:
    m, v, s = res["machine"], res["versions"], res["settings"]
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if k != "python")
    unavailable = [f"- `{k}`: {why}" for k, why in res["stores"].items() if why != "ok"]
    connections = s["connections"]
    threads = s.get("threads", connections)  # results from before --threads ran one per connection
    per_thread = connections // threads
    max_spread = s.get("max_spread")
    bd = res.get("breakdown") or {}
    parts = [
        "# Performance",
        "",
        "sessionkeeper side by side with the session libraries people would pick instead, on the same",
        "servers, the same Redis and the same load, in one run. Everything below the *Method* section is",
        "written by the harness from its latest run (`bench/results/latest.json`); regenerate it with",
        "",
        "```",
        "python3 bench/run.py --breakdown --docs           # full run with the CPU breakdown",
        "python3 bench/run.py --quick --docs               # a few minutes, noisier",
        "python3 bench/run.py --breakdown --strict --docs  # refuse a busy machine and noisy rows",
        "```",
        "",
        "## Method",
        "",
        "- **One command** (`bench/run.py`, stdlib only) creates `bench/.venv` with sessionkeeper (editable,",
        "  with its extras) and the peers from PyPI, starts its own `redis-server` on a free loopback port",
        "  (so its `INFO` counts only the bench) and a dedicated PostgreSQL database `skbench`.",
        "- **Servers**: Flask and Django under gunicorn with 1 sync worker (no keep-alive: every request is",
        "  a new connection); Starlette under uvicorn with 1 worker (uvloop,",
        "  httptools). Every server is pinned to core 0 with `taskset`; wrk and the bench's Redis share",
        "  core 1 (a session store normally runs on another machine). PostgreSQL is the shared service.",
        f"- **Load**: `wrk -t{threads} -c{connections}` with `bench/session.lua`: {threads} browsers, one"
        f" session and {per_thread}",
        "  connections each (wrk's script keeps one cookie per thread; few threads, because wrk shares",
        "  its core with Redis). Each connection first sends a warm-up request to `/write` (which",
        "  creates the session and yields its cookie), then `/read` (reads one key) or `/write`",
        "  (increments it) with its browser's cookie, taking every `Set-Cookie` it gets as a browser",
        "  would (signed-cookie sessions carry their data in it). A browser's requests overlap on its",
        "  session as parallel requests do; no library measured here locks a session, so every one",
        "  does the same work per request.",
        "- **CPU per request**: around every wrk run the harness reads the CPU time (user + system) of",
        "  the server's processes from `/proc` (gunicorn's master and worker), of the bench's Redis",
        "  (`INFO cpu`) and of the PostgreSQL backends serving the bench database (`/proc`, found by",
        "  their process titles), and divides by the requests served. `CPU µs/req` is the server's,",
        "  `store µs/req` Redis' or PostgreSQL's. CPU per request depends much less than req/s on",
        "  what else runs on the machine, so it is the steadier comparison: `x peer CPU` is the",
        "  peer's server CPU per request over sessionkeeper's (above 1: sessionkeeper uses less).",
        "- **Rounds**: all variants run one after the other, read then write, in a rotated order each round;",
        "  ratios (to the framework's no-session baseline, `x base`, and to the named peer, `x peer`) are",
        "  computed within a round and the median over rounds is shown. `+µs/req` is the added time per",
        "  request over the baseline (1/rate - 1/baseline rate). `spread` is (max - min) / median of the",
        "  rounds' req/s: the noise of the machine; a row whose spread is above "
        + (f"{max_spread * 100:.0f}%" if max_spread is not None else "the threshold"),
        "  is flagged. `goal` is the ratio to the peer sessionkeeper aims for.",
        "- **Where the CPU goes** (`bench/breakdown.py`): each store-backed variant again under the same",
        "  load with py-spy attached to the process serving requests (sampling without pausing it;",
        "  idle moments are not sampled). Each sample is put in one category by its innermost frame",
        "  that a rule names (the rules are a short ordered table in `bench/breakdown.py`); a",
        "  category's µs per request is its share of the samples times the server's CPU per request",
        "  measured in that run. py-spy samples a thread that is ready to run but waiting for a core",
        "  as running, so two rows check each run: `py-spy samples` compares the samples with the",
        "  server's CPU time (near 1 when the server had its core to itself), and `waited for a core`",
        "  is that waiting time per request (from the kernel's schedstat). Where they are large the",
        "  machine was busy, the waits after socket calls inflate the socket row, and the other rows",
        "  are too small.",
        "- **Store round trips** are counted by a TCP proxy (`bench/proxy.py`) between the app server and",
        "  Redis/PostgreSQL, with sequential requests from one client: a round trip is a client burst sent",
        "  after the server last answered, however many commands it holds. Redis commands come from",
        "  `INFO commandstats` deltas; PostgreSQL statements from the frontend messages the proxy parses",
        "  (`Q` simple queries and `E` executes). `untouched` is a request with a session cookie to a view",
        "  that never touches the session; `new` is a write without a cookie.",
        "- **Lost updates**: one session, N concurrent requests, each adding its own item to a cart after",
        f"  {s['lost_delay_ms']} ms of simulated work: naively",
        "  (`cart = session.get('cart', {}); cart[item] = 1;",
        "  session['cart'] = cart`) and per key (`session[f'item:{i}'] = 1`). WSGI servers run gunicorn's",
        "  gthread worker with 64 threads for this test (a sync worker would serialise the requests). A",
        "  browser keeps the last cookie it is given: for signed cookies the survivor is the last response.",
        "- No timed assertion anywhere: the harness prints, a person judges.",
        "",
        "## Machine and versions",
        "",
        f"- {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}; load average {m['loadavg_start']:.2f}",
        f"  at the start and {m['loadavg_end']:.2f} at the end (other engineers' test suites share it).",
        *round_loads(res.get("rounds") or []),
        f"- Python {v.get('python')}, {m['wrk']}, Redis {res['redis']}, PostgreSQL {res['postgresql']}.",
        f"- {vers}.",
        f"- Run {res['when']}, `{res['command']}`: {s['rounds']} rounds x {s['duration_s']} s per variant",
        f"  and load, {threads} wrk threads and {connections} connections; {res['elapsed_s']} s in all.",
    ]
    if unavailable:
        parts += ["", "Stores not measured in this run:", "", *unavailable]
    parts += [
        "",
        "## Requests per second and CPU per request",
        "",
        load_table(rows, markdown=True, max_spread=max_spread),
        "",
        "![req/s per variant](performance.png)",
        "",
        "## Where the CPU goes",
        "",
    ]
    if bd:
        parts += [
            "µs of CPU per request, by where the server spends it (see *Method*), with the CPU the",
            "store spent on the same requests. `library` is the session library's own code: for",
            "sessionkeeper its flow, session, codec and adapter, with its store plan (the code that",
            "builds the store's commands and reads their replies) on its own row; for a peer all of",
            "its code. The library's own work is the rows above the event loop: its code, its store",
            "client's Python and the client's timeouts.",
            "",
            breakdown_tables(bd, markdown=True),
            "",
        ]
    else:
        parts += ["(not measured in this run: `python3 bench/run.py --breakdown`)", ""]
    parts += [
        "## Store round trips per request",
        "",
        counts_table(res["counts"], markdown=True) if res["counts"] else "(not measured in this run)",
        "",
        "## Lost updates",
        "",
        lost_table(res["lost"], markdown=True) if res["lost"] else "(not measured in this run)",
        "",
        "Only per-key writes are safe under concurrency, and only with a store that applies a request's",
        "changes as a per-key delta: a naive whole-cart write is last-writer-wins in every library.",
        "",
    ]
    if NOTES.exists():
        parts += [NOTES.read_text().strip(), ""]
    for heading in KEPT:  # sections other tools wrote by hand into the page, kept as they are
        kept = section_of(DOC.read_text() if DOC.exists() else "", heading)
        if kept:
            parts += [kept, ""]
    soak = REPO / "bench" / "soak_results.md"  # bench/soak.py's section (issue 16), kept on rewrite
    if soak.exists():
        parts += [soak.read_text().strip(), ""]
    return "\n".join(parts)


def round_loads(rounds: list[dict[str, Any]]) -> list[str]:
    if not rounds:
        return []
    each = ", ".join(f"{r['load_start']:.1f} -> {r['load_end']:.1f}" for r in rounds)
    return [f"- Load average at the start and end of each round: {each}."]


def section_of(doc: str, heading: str) -> str:
    """The ``## heading`` section of a page up to the next ``## `` heading outside a code block."""
    lines = doc.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        return ""
    fence = False
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and lines[i].startswith("## "):
            return "\n".join(lines[start:i]).strip()
    return "\n".join(lines[start:]).strip()


def rows_from(res: dict[str, Any]) -> list[Row]:
    return [Row(**r) for r in res["rows"]]


def main() -> None:
    """``report.py [RESULTS.json] [--out FILE]``: with --out, only the page, written to FILE
    (to look at it without touching docs/)."""
    args = sys.argv[1:]
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = Path(args[i + 1])
        del args[i : i + 2]
    path = Path(args[0]) if args else REPO / "bench" / "results" / "latest.json"
    res = json.loads(path.read_text())
    rows = rows_from(res)
    if out is not None:
        out.write_text(document(res, rows))
        print(f"wrote {out}")
        return
    if any(r.rps == r.rps for r in rows):
        plot(rows, PLOT, f"req/s per variant ({res['when']}, {res['machine']['nproc']} cores)")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(document(res, rows))
    print(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
