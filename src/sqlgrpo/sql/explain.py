"""Explain SQL in words, deterministically, with sqlglot (a pure function of the SQL text).

``explain_sql`` names the tables and columns a query uses, its joins, filters, grouping
and aggregation, ordering and limit, with step markers (First / Then / Finally). The SFT
warm-up (``sqlgrpo.training.warmup``) uses it to write the reasoning of its targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

_DIALECTS = ("sqlite", "mysql", "postgres")


_CREATE_TABLE = re.compile(
    r"CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", re.I
)


def _parse(sql: str) -> list[exp.Expression]:
    """Parse every statement of ``sql`` with the first dialect that accepts it ([] if none)."""
    for dialect in _DIALECTS:
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except sqlglot.errors.SqlglotError:
            continue
        if statements:
            return statements
    return []


def schema_tables(schema: str) -> dict[str, list[str]]:
    """Table name -> column names from the CREATE TABLE statements in ``schema``."""
    tables: dict[str, list[str]] = {}
    for dialect in _DIALECTS:
        try:
            statements = sqlglot.parse(schema, read=dialect)
        except sqlglot.errors.SqlglotError:
            continue
        for statement in statements:
            if not isinstance(statement, exp.Create):
                continue
            target = statement.this
            table = target.find(exp.Table) if not isinstance(target, exp.Table) else target
            if table is None or not table.name:
                continue
            columns = [c.name for c in statement.find_all(exp.ColumnDef)]
            tables[table.name] = columns
        if tables:
            return tables
    # sqlglot rejects some schemas (e.g. a table named with a reserved word): names only
    return {name: [] for name in _CREATE_TABLE.findall(schema)}


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item.lower() not in {k.lower() for k in seen}:
            seen[item] = None
    return list(seen)


def _join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sql(node: exp.Expression | None) -> str:
    return node.sql() if node is not None else ""


def _table_phrase(tables: list[str], columns: list[str], schema: dict[str, list[str]]) -> str:
    """Name each table with the query's columns that belong to it (by the schema)."""
    lowered = {c.lower() for c in columns}
    parts = []
    for table in tables:
        known = next((cols for name, cols in schema.items() if name.lower() == table.lower()), None)
        used = [c for c in known or [] if c.lower() in lowered]
        parts.append(f"{table} (columns {_join_words(used)})" if used else table)
    return _join_words(parts)


@dataclass(frozen=True)
class JoinFacts:
    """One JOIN: the joined table's name (as written), kind, and its ON / USING text."""

    name: str
    table: str
    how: str
    on: str
    using: str


@dataclass(frozen=True)
class SelectFacts:
    """What a SELECT does, read once from its sqlglot tree; both styles render from it."""

    joins: list[JoinFacts]
    where: exp.Expression | None
    has_subquery: bool
    aggregates: list[str]
    aggregate_names: list[str]
    group_keys: list[str]
    has_window: bool
    having: str
    order: list[tuple[str, bool]]
    limit: str
    outputs: list[str]
    distinct: bool


def _select_facts(select: exp.Select) -> SelectFacts:
    joins = []
    for join in select.args.get("joins") or []:
        target = join.this
        is_table = isinstance(target, exp.Table)
        kind = " ".join(p for p in (join.side, join.kind) if p).lower()
        joins.append(
            JoinFacts(
                name=target.alias_or_name if is_table else "a subquery",
                table=target.name if is_table else "a subquery",
                how=f"{kind} join" if kind else "join",
                on=_sql(join.args.get("on")),
                using=_join_words([_sql(u) for u in join.args.get("using") or []]),
            )
        )
    where = select.args.get("where")
    group = select.args.get("group")
    having = select.args.get("having")
    order = select.args.get("order")
    limit = select.args.get("limit")
    return SelectFacts(
        joins=joins,
        where=where.this if where is not None else None,
        has_subquery=any(select.find_all(exp.Subquery)),
        aggregates=_unique(_sql(a) for a in select.find_all(exp.AggFunc)),
        aggregate_names=_unique(a.key.upper() for a in select.find_all(exp.AggFunc)),
        group_keys=[_sql(e) for e in group.expressions] if group is not None else [],
        has_window=any(select.find_all(exp.Window)),
        having=_sql(having.this) if having is not None else "",
        order=[(_sql(o.this), bool(o.args.get("desc"))) for o in order.expressions]
        if order is not None
        else [],
        limit=_sql(limit.expression) if limit is not None else "",
        outputs=[_sql(e) for e in select.expressions],
        distinct=bool(select.args.get("distinct")),
    )


def _select_steps(select: exp.Select, schema: dict[str, list[str]]) -> tuple[list[str], str]:
    """Middle steps and the final step for a SELECT, one sentence per step."""
    facts = _select_facts(select)
    steps: list[str] = []
    for join in facts.joins:
        if join.on:
            steps.append(f"I {join.how} {join.name} on {join.on} to combine the related rows.")
        elif join.using:
            steps.append(
                f"I {join.how} {join.name} using {join.using} to combine the related rows."
            )
        else:
            steps.append(f"I {join.how} {join.name} to combine its rows with the others.")
    if facts.where is not None:
        steps.append(f"I filter the rows with the condition {_sql(facts.where)}.")
    if facts.has_subquery:
        steps.append("A subquery computes an intermediate result that the outer query uses.")
    if facts.group_keys:
        agg = (
            f" and compute {_join_words(facts.aggregates)} for each group"
            if facts.aggregates
            else ""
        )
        steps.append(f"I group the rows by {_join_words(facts.group_keys)}{agg}.")
    elif facts.aggregates:
        steps.append(f"I aggregate over all matching rows with {_join_words(facts.aggregates)}.")
    if facts.has_window:
        steps.append("A window function ranks or aggregates rows without collapsing them.")
    if facts.having:
        steps.append(f"I keep only the groups where {facts.having}.")
    if facts.order:
        keys = [f"{key} {'descending' if desc else 'ascending'}" for key, desc in facts.order]
        steps.append(f"I order the result by {_join_words(keys)}.")
    if facts.limit:
        steps.append(f"I keep only the first {facts.limit} row(s) with LIMIT.")
    outputs = _join_words(facts.outputs) or "the requested columns"
    distinct = " distinct" if facts.distinct else ""
    return steps, f"I select the{distinct} output {outputs} to answer the question."


def _concise_select(select: exp.Select) -> tuple[list[str], str]:
    """Short operation phrases and the final phrase for a SELECT."""
    facts = _select_facts(select)
    ops: list[str] = []
    if facts.joins:
        ops.append(f"join {_join_words([j.table for j in facts.joins])}")
    if facts.where is not None:
        ops.append(f"filter on {_column_names(facts.where) or 'a condition'}")
    if facts.has_subquery:
        ops.append("use a subquery")
    if facts.group_keys:
        ops.append(f"group by {_join_words(facts.group_keys)}")
    if facts.aggregate_names:
        ops.append(f"aggregate with {_join_words(facts.aggregate_names)}")
    if facts.has_window:
        ops.append("use a window function")
    if facts.having:
        ops.append("keep groups with HAVING")
    if facts.order:
        keys = [key + (" descending" if desc else "") for key, desc in facts.order]
        ops.append(f"order by {_join_words(keys)}")
    if facts.limit:
        ops.append(f"keep {facts.limit} row(s)")
    outputs = _join_words(facts.outputs)
    if not outputs or len(outputs) > 80:
        outputs = "the requested columns"
    return ops, f"return {'distinct ' if facts.distinct else ''}{outputs}"


def _lower_first(sentence: str) -> str:
    """Lower-case the first letter unless it is the pronoun I."""
    if sentence.startswith("I "):
        return sentence
    return sentence[0].lower() + sentence[1:]


#: Explanation styles: ``full`` writes one line per step and restates each condition;
#: ``concise`` writes three lines (tables, operations, output) without restating the SQL.
EXPLANATION_STYLES = ("full", "concise")


def explain_sql(sql: str, schema: str = "", style: str = "full") -> str:
    """A deterministic, multi-line explanation of how ``sql`` answers its question.

    Names the tables and columns used (matched against the ``schema``'s CREATE TABLE
    statements), joins, filters, grouping / aggregation, ordering and limits, with
    step markers "First, ... Then, ... Finally, ...". SQL that sqlglot cannot parse
    still gets a short explanation naming the schema tables it mentions. ``style``
    (see :data:`EXPLANATION_STYLES`) picks one line per step or three short lines.
    """
    if style not in EXPLANATION_STYLES:
        raise ValueError(f"unknown explanation style {style!r}; choose from {EXPLANATION_STYLES}")
    tables_in_schema = schema_tables(schema) if schema else {}
    statements = _parse(sql)
    if not statements:
        mentioned = [t for t in tables_in_schema if re.search(rf"\b{re.escape(t)}\b", sql, re.I)]
        names = f"the table(s) {_join_words(mentioned)}" if mentioned else "the tables it needs"
        return "\n".join(
            [
                f"First, I look at the database schema and find {names}.",
                "Then, I match the question's conditions to their columns.",
                "Finally, I write one SQL statement that returns exactly what the question asks.",
            ]
        )
    tables: list[str] = []
    columns: list[str] = []
    for tree in statements:
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        tables += [t.name for t in tree.find_all(exp.Table) if t.name.lower() not in ctes]
        columns += [c.name for c in tree.find_all(exp.Column) if c.name]
    tables, columns = _unique(tables), _unique(columns)
    if style == "concise":
        return _concise(statements, tables, columns, tables_in_schema)
    lines = [
        f"First, the question needs the table(s) {_table_phrase(tables, columns, tables_in_schema)}"
        " from the database schema."
    ]
    steps: list[str] = []
    for tree in statements:
        middle, final = _statement_steps(tree, tables_in_schema)
        steps.extend(middle)
        steps.append(final)
    lines.extend(f"Then, {_lower_first(step)}" for step in steps[:-1])
    lines.append(f"Finally, {_lower_first(steps[-1])}")
    return "\n".join(lines)


def _concise(
    statements: list[exp.Expression],
    tables: list[str],
    columns: list[str],
    schema: dict[str, list[str]],
) -> str:
    """Three lines: the tables and columns, the operations in a few words, the output."""
    operations: list[str] = []
    finals: list[str] = []
    for tree in statements:
        ops, final = _concise_statement(tree)
        operations += ops
        finals.append(final)
    lines = [f"First, I use the table(s) {_table_phrase(tables, columns, schema)}."]
    if operations:
        lines.append(f"Then, I {', '.join(_unique(operations))}.")
    lines.append(f"Finally, I {' and '.join(finals)}.")
    return "\n".join(lines)


def _column_names(node: exp.Expression | None) -> str:
    return _join_words(_unique(c.name for c in node.find_all(exp.Column))) if node else ""


def _concise_statement(tree: exp.Expression) -> tuple[list[str], str]:
    """Short operation phrases and the final phrase for one statement."""
    ops: list[str] = []
    ctes = sorted({c.alias_or_name for c in tree.find_all(exp.CTE)})
    if ctes:
        ops.append(f"define {_join_words(ctes)} in a WITH clause")
    if isinstance(tree, exp.SetOperation):
        return ops, f"combine two queries with {type(tree).__name__.upper()}"
    if isinstance(tree, exp.Select):
        select_ops, final = _concise_select(tree)
        return ops + select_ops, final
    if isinstance(tree, (exp.Update, exp.Delete)):
        where = tree.args.get("where")
        if where is not None:
            ops.append(f"filter on {_column_names(where) or 'a condition'}")
        if isinstance(tree, exp.Delete):
            return ops, f"delete the matching rows from {_sql(tree.this)}"
        sets = _join_words(_unique(e.this.name for e in tree.expressions if e.this is not None))
        return ops, f"update {_sql(tree.this)}, setting {sets or 'the new values'}"
    if isinstance(tree, exp.Insert):
        target = tree.find(exp.Table)
        if tree.find(exp.Select):
            ops.append("select the rows to insert")
        return ops, f"insert into {target.name if target else 'the table'}"
    return ops, f"write the {tree.key.upper()} statement"


def _statement_steps(tree: exp.Expression, schema: dict[str, list[str]]) -> tuple[list[str], str]:
    """Middle steps and the final step explaining one statement."""
    middle: list[str] = []
    ctes = sorted({c.alias_or_name for c in tree.find_all(exp.CTE)})
    if ctes:
        middle.append(f"A WITH clause defines {_join_words(ctes)} as a named step.")
    if isinstance(tree, exp.SetOperation):
        kind = type(tree).__name__.upper()
        middle.append(f"I combine two SELECT queries with {kind} so both result sets contribute.")
        return middle, "I return the combined rows as the answer."
    if isinstance(tree, exp.Select):
        steps, final = _select_steps(tree, schema)
        return middle + steps, final
    if isinstance(tree, exp.Insert):
        target = tree.find(exp.Table)
        if tree.find(exp.Select):
            middle.append("The inserted rows come from a SELECT over the existing data.")
        return middle, f"I insert the new row(s) into {target.name if target else 'the table'}."
    if isinstance(tree, exp.Update):
        sets = _join_words([_sql(e) for e in tree.expressions])
        where = tree.args.get("where")
        if where is not None:
            middle.append(f"I filter the rows to change with {_sql(where.this)}.")
        return middle, f"I update {_sql(tree.this)} and set {sets}."
    if isinstance(tree, exp.Delete):
        where = tree.args.get("where")
        if where is not None:
            middle.append(f"I filter the rows to remove with {_sql(where.this)}.")
        return middle, f"I delete the matching rows from {_sql(tree.this)}."
    return middle, f"I write the {tree.key.upper()} statement the question asks for."
