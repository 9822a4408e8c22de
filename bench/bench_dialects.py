"""Gold SQL on three engines: the Spider subset's gold queries run on SQLite (as written) and on
DuckDB and PostgreSQL (transpiled from SQLite's dialect by sqlglot, on copies of the same
databases loaded by sqlgrpo.sql.engines), and their results compared.

A gold "agrees" when the engine's result equals SQLite's under the seed rule (values normalised,
rows as a multiset, as a list when the gold has ORDER BY). Every difference is listed with a
reason found by looking at the two results (``_why``). Writes its section of BENCHMARKS.md and
a detailed list to docs/dialects.md.

PostgreSQL: ``--pg-url URL`` (a database the script may create schemas in), else a throwaway
cluster (tests/pg_cluster.py) when the server programs are installed.

Usage: python bench/bench_dialects.py [--data PATH] [--limit N] [--pg-url URL] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks_md import write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "spider_train_subset"
DETAILS = REPO / "docs" / "dialects.md"


def _why(
    gold: object,
    other: object,
    sqlite_result: object,
    engine_result: object,
    mixed_columns: tuple[str, ...] = (),
) -> str:
    """A reason for a difference, read from the SQL, the two results and the columns that
    mix numbers and text (loaded as text)."""
    from sqlgrpo.sql.compare import compare_results, normalize_rows

    a, b = sqlite_result, engine_result
    text = str(gold).lower()
    mixed = [c.lower() for c in mixed_columns if re.search(rf"\b{re.escape(c.lower())}\b", text)]
    set_op = any(f" {word} " in f" {text} " for word in ("intersect", "except", "union"))
    if not b.ok:
        message = b.error_message or ""
        if "for select distinct, order by" in message.lower():
            return (
                "SELECT DISTINCT ordered by a column it does not select: SQLite orders by some "
                "row of each value, PostgreSQL refuses (no rewrite keeps SQLite's choice)"
            )
        if set_op and "types" in message.lower() and "cannot be matched" in message.lower():
            return (
                "set operation between an integer column and a column mixing numbers and text "
                f"(loaded as text: {', '.join(mixed)})"
            )
        if "varchar" in message.lower() and (
            "sum(" in message.lower() or "avg(" in message.lower()
        ):
            return f"text column holding numbers: SQLite converts it inside sum()/avg() ({message[:100]})"
        if "cannot compare" in message.lower() or "operator does not exist" in message.lower():
            return f"text column compared with a number: SQLite compares, the engine refuses ({message[:100]})"
        return f"error on the engine: {b.error_class.value}: {message[:140]}"
    extremes = [c for c in mixed if f"min({c})" in text or f"max({c})" in text]
    if extremes and len(a.rows) != len(b.rows):
        return (
            f"min()/max() over {extremes[0]}, a column mixing numbers and text: SQLite ranks "
            f"numbers below text, the engine compares the loaded text (row count {len(a.rows)} "
            f"vs {len(b.rows)})"
        )
    if len(a.rows) != len(b.rows):
        return f"row count {len(a.rows)} vs {len(b.rows)}"
    if len(a.columns) != len(b.columns):
        return f"columns {len(a.columns)} vs {len(b.columns)}"
    if Counter(normalize_rows(a.rows)) == Counter(normalize_rows(b.rows)):
        nulls = any(v is None for row in a.rows for v in row)
        return "same rows, other order" + (" (NULLs sort differently)" if nulls else " (ties)")
    if compare_results(a, b, "spider").exact:
        return "same values, other column order"
    if " limit " in text and "order by" in text:
        return "ties at the LIMIT: rows with equal ORDER BY keys, another one kept"
    diffs = []
    for row_a, row_b in zip(sorted(a.rows, key=repr), sorted(b.rows, key=repr), strict=False):
        for x, y in zip(row_a, row_b, strict=False):
            if x != y:
                diffs.append((x, y))
    if not diffs:
        return "values differ"
    x, y = diffs[0]
    if isinstance(x, int) and isinstance(y, float) and "/" in text:
        return f"integer division: SQLite {x!r}, engine {y!r}"
    if isinstance(x, float) and isinstance(y, float):
        return f"floating point: {x!r} vs {y!r}"
    if type(x) is not type(y):
        kinds = f"SQLite {x!r} ({type(x).__name__}), engine {y!r} ({type(y).__name__})"
        if set_op and mixed:
            return (
                "set operation between an integer column and a column mixing numbers and text "
                f"(loaded as text: {', '.join(mixed)}): {kinds}"
            )
        return f"types: {kinds}"
    if re.search(r"\b(min|max)\(", text) and " group by " in text:
        return (
            f"a column beside min()/max() in a GROUP BY: among rows tied at the extreme SQLite "
            f"keeps another one (values: SQLite {x!r}, engine {y!r})"
        )
    if isinstance(x, str) and x.lower() == str(y).lower():
        return f"case: {x!r} vs {y!r}"
    return f"values: SQLite {x!r}, engine {y!r}"


def _tie_broken(sql: str, n_columns: int) -> str | None:
    """The gold with every output column appended to its outermost ORDER BY (so rows whose
    keys tie come out in one order on every engine), in SQLite's dialect; None when sqlglot
    cannot rewrite it."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # noqa: BLE001
        return None
    order = tree.args.get("order")
    if order is None:
        return None
    for i in range(1, n_columns + 1):
        order.append("expressions", exp.Ordered(this=exp.Literal.number(i)))
    return tree.sql(dialect="sqlite")


def _equal_once_ties_broken(sample: object, database: object, sqlite: object, n: int) -> bool:
    from sqlgrpo.sql.compare import compare_results

    broken = _tie_broken(sample.sql, n)
    if broken is None:
        return False
    a = sqlite.get(db_path=sample.db_path).run(broken, allow_multiple=True)
    b = database.run(broken, allow_multiple=True)
    return a.ok and b.ok and compare_results(a, b, "seed", order_matters=True).exact


def compare_engine(samples: list, engine_name: str, *, url: str | None) -> dict:
    from sqlgrpo.sql.compare import compare_results
    from sqlgrpo.sql.database import DatabaseCache
    from sqlgrpo.sql.engines.cache import EngineCache
    from sqlgrpo.sql.sandbox import SandboxLimits
    from sqlgrpo.sql.statements import has_order_by

    limits = SandboxLimits(timeout_s=30.0, max_rows=100_000)
    sqlite = DatabaseCache(limits)
    engine = EngineCache(engine_name, limits, url=url, isolation="inline")
    same, ties, differences, load_s, run_s = 0, 0, [], 0.0, 0.0
    gold_errors = 0
    for sample in samples:
        a = sqlite.get(db_path=sample.db_path).run(sample.sql, allow_multiple=True)
        if not a.ok:
            gold_errors += 1
            continue
        started = time.perf_counter()
        database = engine.get(db_path=sample.db_path)
        loaded = time.perf_counter()
        b = database.run(sample.sql, allow_multiple=True)
        run_s += time.perf_counter() - loaded
        load_s += loaded - started
        ordered = has_order_by(sample.sql)
        if b.ok and compare_results(a, b, "seed", order_matters=ordered).exact:
            same += 1
            continue
        mixed = tuple(
            note.split(":")[0].split(".", 1)[-1]
            for note in database.diagnostics
            if "values of several types" in note
        )
        why = _why(sample.sql, None, a, b, mixed)
        if b.ok and ordered and _equal_once_ties_broken(sample, database, sqlite, len(a.columns)):
            why = "ties (verified): equal once every output column breaks ORDER BY ties; " + why
            ties += 1
        differences.append(
            {
                "id": sample.id,
                "db_id": sample.metadata.get("db_id"),
                "gold": sample.sql,
                "transpiled": database.gold_sql(sample.sql),
                "why": why,
            }
        )
    engine.clear()
    compared = len(samples) - gold_errors
    return {
        "engine": engine_name,
        "compared": compared,
        "gold_errors_on_sqlite": gold_errors,
        "same": same,
        "same_rate": same / compared if compared else 0.0,
        "ties": ties,
        "same_or_ties_rate": (same + ties) / compared if compared else 0.0,
        "differences": differences,
        "load_s": round(load_s, 1),
        "run_s": round(run_s, 1),
    }


def _category(why: str) -> str:
    return why.split(":")[0].split(" (")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO / "tests"))
    from sqlgrpo.data import load_samples
    from sqlgrpo.models.precision import cpu_model_name

    samples = load_samples(args.data, split="train", limit=args.limit).samples
    cluster = None
    url = args.pg_url
    results = []
    try:
        for name in args.engines.split(","):
            if name == "postgres" and url is None:
                from pg_cluster import PgCluster, admin_sql

                cluster = PgCluster().start()
                admin_sql(cluster.url(), "CREATE DATABASE dialects")
                url = cluster.url("dialects")
            started = time.perf_counter()
            results.append(compare_engine(samples, name, url=url))
            results[-1]["wall_s"] = round(time.perf_counter() - started, 1)
            r = results[-1]
            print(
                f"{name}: {r['same']}/{r['compared']} same ({r['same_rate']:.1%}), {r['wall_s']} s"
            )
    finally:
        if cluster is not None:
            cluster.stop()
    if args.no_write:
        print(json.dumps(results, indent=1)[:5000])
        return 0
    lines = [
        f"`python bench/bench_dialects.py` on `{Path(args.data).name}` ({len(samples)} gold "
        "queries, 30 databases): each gold runs on SQLite as written and on the engine after "
        "`sqlglot.transpile(read='sqlite', write=<engine>)` with SQLite's leniencies and type "
        "affinity made explicit (`sqlgrpo.sql.engines.transpile`), on a copy of the same database "
        "(`sqlgrpo.sql.engines.cache`); *same* = equal under the seed rule (values normalised, "
        "rows as a multiset, in order when the gold has ORDER BY). Every difference is listed "
        "with its reason in [docs/dialects.md](docs/dialects.md).",
        "",
        "| engine | compared | same | rate | + tie-order only | rate with ties | other differences by reason | load + run (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reasons = Counter(
            _category(d["why"]) for d in r["differences"] if not d["why"].startswith("ties")
        )
        text = "; ".join(f"{k}: {v}" for k, v in reasons.most_common())
        lines.append(
            f"| {r['engine']} | {r['compared']} | {r['same']} | {r['same_rate']:.1%} | "
            f"{r['ties']} | {r['same_or_ties_rate']:.1%} | {text or '-'} | "
            f"{r['load_s']} + {r['run_s']} |"
        )
    lines.append("")
    lines.append(
        "The one gold that fails on SQLite itself (`exec_check.json`: a missing table) is left "
        f"out. Measured on {cpu_model_name()} ({os.cpu_count()} cores; timings are indicative "
        "only when other work shares them)."
    )
    write_section("dialects", "Gold SQL on DuckDB and PostgreSQL (issue 36)", "\n".join(lines))
    detail = [
        "# Gold SQL across engines: every difference",
        "",
        'Written by `python bench/bench_dialects.py` (see BENCHMARKS.md, "Gold SQL on DuckDB '
        'and PostgreSQL"). Each row: the sample, the gold as written for SQLite, what sqlglot '
        "made of it, and why the engine's result differs from SQLite's.",
    ]
    for r in results:
        detail += ["", f"## {r['engine']}: {r['same']} of {r['compared']} the same", ""]
        detail += ["| id | db | gold (SQLite) | transpiled | why |", "|---|---|---|---|---|"]
        for d in r["differences"]:
            cells = [d["id"], d["db_id"] or "", d["gold"], d["transpiled"], d["why"]]
            detail.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    DETAILS.write_text("\n".join(detail) + "\n", encoding="utf-8")
    return 0


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    raise SystemExit(main())
