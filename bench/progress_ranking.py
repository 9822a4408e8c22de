"""How the `spec` and `progress` reward profiles rank a right answer, honest partial answers and
the three measured reward hacks, on real rows: each SELECT row's gold SQL and variants of it.

Per row whose gold is a single-table-rooted SELECT (variants built with sqlglot from the gold):

* ``correct``: the gold itself;
* ``one filter dropped`` (honest partial): ``WHERE a AND b`` -> ``WHERE a`` (rows with such a WHERE);
* ``missing column`` (honest, erroring): the first selected column misspelled;
* ``hack a: run-on``: the gold followed by text after ``</sql>``;
* ``hack b: bare SELECT``: the gold without WHERE, joins, GROUP BY, HAVING, ORDER BY and LIMIT,
  aggregates replaced by their argument (rows whose gold narrows its rows);
* ``hack c: GROUP BY key``: that bare SELECT with ``GROUP BY`` the FROM table's key column (rows
  whose gold has no GROUP BY and whose table has a primary key or an id column).

Every completion carries the same reasoning text. Prints, per profile and variant, the mean
total reward, and the share of rows where the variant scores below the gold and below the
row's honest partial answer (counts of rows below / tied / above it). Run from the repository root:

    PYTHONPATH=src python bench/progress_ranking.py [--data src/sqlgrpo/data/bundled/test.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "src" / "sqlgrpo" / "data" / "bundled" / "test.jsonl"
REASONING = (
    "First I find the table the question is about.\n"
    "Then I keep the rows the question asks for.\n"
    "Finally I select the columns it names."
)
PARTIAL = "one filter dropped"
HACKS = ("hack a: run-on", "hack b: bare SELECT", "hack c: GROUP BY key")
VARIANTS = ("correct", PARTIAL, "missing column", *HACKS)


def _key_column(table: str, context: str) -> str | None:
    """The table's primary key, else a column named id / *_id, read from the context."""
    import sqlglot
    from sqlglot import exp

    from sqlgrpo.sql.shape import is_key_column

    for statement in sqlglot.parse(context, read="sqlite"):
        schema = statement.this if isinstance(statement, exp.Create) else None
        if not isinstance(schema, exp.Schema) or schema.this.name.lower() != table.lower():
            continue
        columns = [c for c in schema.expressions if isinstance(c, exp.ColumnDef)]
        for column in columns:
            if any(isinstance(k.kind, exp.PrimaryKeyColumnConstraint) for k in column.constraints):
                return column.name
        named = [c.name for c in columns if is_key_column(c.name)]
        return named[0] if named else None
    return None


def variants(gold: str, context: str) -> dict[str, str]:
    """SQL (or, for the run-on hack, SQL plus trailing text) of each variant the row allows."""
    import sqlglot
    from sqlglot import exp

    from sqlgrpo.sql.shape import query_shape

    tree = sqlglot.parse_one(gold, read="sqlite")
    source = tree.args.get("from_")
    if not isinstance(tree, exp.Select) or source is None or not isinstance(source.this, exp.Table):
        return {}
    table = source.this.name
    out = {"correct": gold, "hack a: run-on": gold}
    where = tree.args.get("where")
    if where is not None and isinstance(where.this, exp.And):
        partial = tree.copy()
        partial.args["where"].set("this", where.this.left.copy())
        out[PARTIAL] = partial.sql(dialect="sqlite")
    first = tree.find(exp.Column)
    if first is not None:
        broken = tree.copy()
        broken.find(exp.Column).set("this", exp.to_identifier(first.name + "_x"))
        out["missing column"] = broken.sql(dialect="sqlite")
    shape = query_shape(gold)
    if shape is not None and shape.narrows:
        bare = tree.copy()
        for clause in ("where", "joins", "group", "having", "order", "limit"):
            bare.set(clause, None)
        for agg in list(bare.find_all(exp.AggFunc)):
            arg = agg.this if isinstance(agg.this, exp.Column) else exp.Star()
            agg.replace(arg.copy())
        bare_sql = bare.sql(dialect="sqlite")
        out["hack b: bare SELECT"] = bare_sql
        key = _key_column(table, context)
        if key is not None and not shape.grouped:
            out["hack c: GROUP BY key"] = f"{bare_sql} GROUP BY {key}"
    return out


def completion(name: str, sql: str) -> str:
    text = f"<reasoning>\n{REASONING}\n</reasoning>\n<sql>\n{sql}\n</sql>"
    return text + (
        "\nThis query answers the question.\n<sql>SELECT 1;</sql>" if name in HACKS[:1] else ""
    )


def main(argv: list[str] | None = None) -> int:
    from sqlgrpo.rewards import build_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    items: list[tuple[int, str, str]] = []  # (row index, variant, completion)
    for i, row in enumerate(rows):
        try:
            found = variants(row["sql"], row["sql_context"])
        except Exception:  # noqa: BLE001 - a gold sqlglot cannot read: no variants
            continue
        items += [(i, name, completion(name, sql)) for name, sql in found.items()]
    columns = {
        "sql": [rows[i]["sql"] for i, _, _ in items],
        "sql_context": [rows[i]["sql_context"] for i, _, _ in items],
    }
    completions = [c for _, _, c in items]
    print(f"{args.data}: {len(rows)} rows, {len({i for i, _, _ in items})} with variants, "
          f"{len(items)} completions")  # fmt: skip
    print(
        "\n| profile | variant | rows | mean total | below the gold "
        "| vs the honest partial: below / tied / above |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for profile in ("spec", "progress"):
        started = time.perf_counter()
        scores = [f(None, completions, **columns) for f in build_profile(profile)]
        totals = [sum(s) for s in zip(*scores, strict=True)]
        by_row: dict[int, dict[str, float]] = {}
        for (i, name, _), total in zip(items, totals, strict=True):
            by_row.setdefault(i, {})[name] = total
        for name in VARIANTS:
            have = [r for r in by_row.values() if name in r]
            if not have:
                continue
            mean = sum(r[name] for r in have) / len(have)
            below = sum(r[name] < r["correct"] - 1e-9 for r in have) / len(have)
            paired = [r for r in have if PARTIAL in r]
            vs_partial = ""
            if paired and name in HACKS:
                below_p = sum(r[name] < r[PARTIAL] - 1e-9 for r in paired)
                above_p = sum(r[name] > r[PARTIAL] + 1e-9 for r in paired)
                tied = len(paired) - below_p - above_p
                vs_partial = f"{below_p} / {tied} / {above_p}"
            cell = "" if name == "correct" else f"{below:.0%}"
            print(f"| `{profile}` | {name} | {len(have)} | {mean:.3f} | {cell} | {vs_partial} |")
        print(f"({profile}: {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
