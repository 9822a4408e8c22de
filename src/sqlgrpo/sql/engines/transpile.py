"""Gold SQL written for SQLite, rewritten for DuckDB or PostgreSQL.

sqlglot translates the syntax; what it cannot know is how SQLite's leniencies meet the data.
:func:`transpile_script` makes them explicit first (:func:`sqlite_leniencies`):

* ``LIKE`` ignores ASCII case (``ILIKE``); a double-quoted word naming no table or column is a
  string; a derived table needs no alias (PostgreSQL: one is added);
* a "bare" column of a GROUP BY query (SQLite takes it from some row of the group) becomes an
  aggregate (``MIN``; with exactly one ``max``/``min`` in the query, the row holding it);
* **type affinity** (:func:`sqlite_affinities`), which needs the columns' types
  (:class:`~sqlgrpo.sql.engines.load.SchemaTypes`): text that SQLite reads as a number inside
  ``sum``/``avg``/``total`` and arithmetic (its longest numeric prefix, 0 when none); a text
  column compared with a number (a TEXT column: the number is compared as text; a numeric
  column holding text, or a text column against a numeric column: numbers compare as numbers
  and text ranks above every number); ``IN (SELECT ...)`` between a number and text the same
  way; ``ORDER BY`` a numeric column holding text (NULLs, then numbers, then text).

Section 4 of SQLite's "Datatypes" page states the affinity rules followed here.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlgrpo.sql.engines.load import SchemaTypes

logger = logging.getLogger(__name__)

#: A numeric literal as SQLite reads one (non-capturing groups: PostgreSQL's substring()).
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NUMERIC_AFFINITIES = ("integer", "real", "numeric", "blob")


def transpile_script(
    sql: str,
    read: str = "sqlite",
    write: str = "duckdb",
    schema: SchemaTypes | frozenset[str] | None = None,
) -> str:
    """``sql`` rewritten from dialect ``read`` into ``write`` by sqlglot (statements joined
    by ``;``); unchanged when the dialects agree or sqlglot cannot read it.

    From SQLite, its leniencies are made explicit first (:func:`sqlite_leniencies`);
    ``schema`` (the database's :class:`SchemaTypes`, or only its lowercased names) tells
    names from strings and which columns hold text.
    """
    if read == write:
        return sql
    import sqlglot

    if isinstance(schema, frozenset):
        schema = SchemaTypes(names=schema)
    try:
        trees = sqlglot.parse(sql, read=read)
        if read == "sqlite":
            trees = [sqlite_leniencies(t, schema, write) if t is not None else t for t in trees]
        pieces = [t.sql(dialect=write) for t in trees if t is not None]
    except Exception as exc:  # noqa: BLE001 - sqlglot errors, recursion: run it as written
        logger.debug("could not transpile %r from %s to %s: %s", sql[:80], read, write, exc)
        return sql
    return ";\n".join(pieces) if pieces else sql


def sqlite_leniencies(tree: Any, schema: SchemaTypes | None, write: str = "duckdb") -> Any:
    """The sqlglot tree of an SQLite statement with its leniencies made explicit (see the
    module docstring) for dialect ``write``."""
    from sqlglot import exp

    for like in list(tree.find_all(exp.Like)):  # SQLite's LIKE ignores ASCII case
        like.replace(exp.ILike(this=like.this, expression=like.expression))
    if schema is not None and schema.names:
        for column in list(tree.find_all(exp.Column)):
            ident = column.this
            if (
                isinstance(ident, exp.Identifier)
                and ident.quoted
                and not column.table
                and ident.name.lower() not in schema.names
            ):
                column.replace(exp.Literal.string(ident.name))
    if write == "postgres":
        for i, sub in enumerate(list(tree.find_all(exp.Subquery))):
            if isinstance(sub.parent, (exp.From, exp.Join)) and not sub.alias:
                sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"derived_{i}")))
    _bare_columns(tree, write)
    if schema is not None and schema.columns:
        sqlite_affinities(tree, schema, write)
    return tree


def _bare_columns(tree: Any, write: str) -> None:
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        group = select.args.get("group")
        own_aggregates = [
            a for e in select.expressions for a in e.find_all(exp.AggFunc)
            if a.find_ancestor(exp.Select) is select
        ]  # fmt: skip
        if group is None and not own_aggregates:
            continue
        extremes = [
            a for e in select.expressions for a in e.find_all(exp.Max, exp.Min)
            if a.find_ancestor(exp.Select) is select
        ]  # fmt: skip
        extreme = extremes[0] if len(extremes) == 1 else None
        keys = group.expressions if group is not None else []
        grouped = {_column_key(e) for e in keys if isinstance(e, exp.Column)}
        grouped_names = {key[1] for key in grouped}
        aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
        targets = list(select.expressions)
        order = select.args.get("order")
        if order is not None:
            targets += [o.this for o in order.expressions]
        for target in targets:
            node = target.this if isinstance(target, exp.Alias) else target
            if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
                continue
            key = _column_key(node)
            if key in grouped or (not key[0] and key[1] in grouped_names):
                continue
            if not key[0] and key[1] in aliases:
                continue
            node.replace(_bare_value(node.copy(), extreme, write))


def _bare_value(column: Any, extreme: Any, write: str) -> Any:
    """A bare column as an aggregate: with exactly one ``max(x)`` / ``min(x)`` in the query,
    SQLite takes it from the row holding that extreme (its documented rule): ``arg_max``
    (DuckDB) or the first of ``array_agg(... ORDER BY x)`` (PostgreSQL); otherwise ``MIN()``
    (any row of the group would do; SQLite's choice is not defined)."""
    import sqlglot
    from sqlglot import exp

    if extreme is None:
        return exp.Min(this=column)
    key = extreme.this.copy()
    if write == "duckdb":
        cls = exp.ArgMax if isinstance(extreme, exp.Max) else exp.ArgMin
        return cls(this=column, expression=key)
    direction = "DESC" if isinstance(extreme, exp.Max) else "ASC"
    text = f"(ARRAY_AGG({column.sql(write)} ORDER BY {key.sql(write)} {direction} NULLS LAST))[1]"
    return sqlglot.parse_one(text, read=write)


def _column_key(column: Any) -> tuple[str, str]:
    return (column.table or "").lower(), column.name.lower()


# --- type affinity ------------------------------------------------------------------------


def sqlite_affinities(tree: Any, schema: SchemaTypes, write: str) -> Any:
    """SQLite's type-affinity conversions in ``tree`` made explicit for ``write`` (module
    docstring); columns are typed through ``schema``, anything untyped is left alone."""
    from sqlglot import exp

    def text_column(node: Any) -> tuple[str, str] | None:
        info = _column_type(node, schema) if isinstance(node, exp.Column) else None
        return info if info is not None and info[1] == "text" else None

    for between in list(tree.find_all(exp.Between)):
        if text_column(between.this):  # SQLite reads it as x >= low AND x <= high
            subject = between.this
            both = exp.and_(
                exp.GTE(this=subject.copy(), expression=between.args["low"].copy()),
                exp.LTE(this=subject.copy(), expression=between.args["high"].copy()),
            )
            between.replace(exp.Paren(this=both))
    for node in list(tree.find_all(exp.In)):
        if node.args.get("query") is not None:
            _in_subquery(node, schema, write)
        elif text_column(node.this) and any(_is_number(e) for e in node.expressions):
            either = exp.or_(*(exp.EQ(this=node.this.copy(), expression=e.copy())
                               for e in node.expressions))  # fmt: skip
            node.replace(exp.Paren(this=either))
    for comparison in list(tree.find_all(*_comparisons())):
        _comparison(comparison, schema, write)
    for agg in list(tree.find_all(exp.Sum, exp.Avg)):
        if text_column(agg.this):
            agg.this.replace(_parse(_numeric_text(agg.this.sql(write), write), write))
    for op in list(tree.find_all(exp.Add, exp.Sub, exp.Mul, exp.Div)):
        for side in (op.this, op.expression):
            if text_column(side):
                side.replace(_parse(_numeric_text(side.sql(write), write), write))
    for ordered in list(tree.find_all(exp.Ordered)):
        info = text_column(ordered.this)
        if info and info[0] in _NUMERIC_AFFINITIES and isinstance(ordered.parent, exp.Order):
            _order_mixed(ordered, write)
    return tree


def _comparisons() -> tuple[type, ...]:
    from sqlglot import exp

    return (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _comparison(node: Any, schema: SchemaTypes, write: str) -> None:
    """One comparison with a text column on one side and a number on the other."""
    from sqlglot import exp

    for text_side, other, flipped in ((node.this, node.expression, False),
                                      (node.expression, node.this, True)):  # fmt: skip
        info = _column_type(text_side, schema) if isinstance(text_side, exp.Column) else None
        if info is None or info[1] != "text":
            continue
        other_info = _column_type(other, schema) if isinstance(other, exp.Column) else None
        if _is_number(other) and info[0] == "text":  # TEXT affinity passes to the literal
            other.replace(exp.Literal.string(other.sql("sqlite").replace(" ", "")))
            return
        if not _is_number(other) and not (other_info and other_info[1] in ("integer", "real")):
            continue
        t, o = text_side.sql(write), other.sql(write)
        if isinstance(node, exp.EQ) and not _is_number(other):
            # a join key: one side converted keeps the join hashable; text never equals a number
            text_side.replace(_parse(_as_number(t, write), write))
            return
        op = _flip(type(node)) if flipped else type(node)
        text_wins = "TRUE" if op in (exp.GT, exp.GTE, exp.NEQ) else "FALSE"
        null_other = "" if _is_number(other) else f" OR {o} IS NULL"
        number = f"CAST({t} AS {_double(write)})"
        left, right = (o, number) if flipped else (number, o)
        text = (
            f"(CASE WHEN {t} IS NULL{null_other} THEN NULL WHEN {_is_numeric_text(t, write)} "
            f"THEN {left} {_OPS[type(node).__name__]} {right} ELSE {text_wins} END)"
        )
        node.replace(_parse(text, write))
        return


_OPS = {"EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


def _flip(op: type) -> type:
    from sqlglot import exp

    return {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}.get(op, op)


def _in_subquery(node: Any, schema: SchemaTypes, write: str) -> None:
    """``x IN (SELECT y ...)`` is ``x = y``: between a number and text, the text is read as a
    number (text that is not one never matches: NaN here, which no stored value equals)."""
    from sqlglot import exp

    query = node.args["query"]
    select = query.this if isinstance(query, exp.Subquery) else query
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        return
    inner = select.expressions[0]
    outer = node.this
    pair = [_column_type(e, schema) if isinstance(e, exp.Column) else None for e in (outer, inner)]
    if None in pair:
        return
    kinds = {pair[0][1], pair[1][1]}
    if "text" not in kinds or not kinds & {"integer", "real"}:
        return
    text_side = outer if pair[0][1] == "text" else inner
    text_side.replace(_parse(_as_number(text_side.sql(write), write, missing="NaN"), write))


def _order_mixed(ordered: Any, write: str) -> None:
    """``ORDER BY x`` for a numeric column holding text: NULLs, numbers, then text."""
    from sqlglot import exp

    t = ordered.this.sql(write)
    desc = bool(ordered.args.get("desc"))
    rank = _parse(
        f"CASE WHEN {t} IS NULL THEN 0 WHEN {_is_numeric_text(t, write)} THEN 1 ELSE 2 END", write
    )
    keys = [rank, _parse(_as_number(t, write), write), ordered.this.copy()]
    order = ordered.parent
    at = order.expressions.index(ordered)
    new = [exp.Ordered(this=k, desc=desc, nulls_first=not desc) for k in keys]
    order.set("expressions", order.expressions[:at] + new + order.expressions[at + 1 :])


def _column_type(column: Any, schema: SchemaTypes) -> tuple[str, str] | None:
    """``(affinity, kind)`` of a column reference, resolved through the FROM / JOIN tables of
    its query (then the enclosing queries': a correlated reference); None when unknown."""
    from sqlglot import exp

    name = column.name.lower()
    qualifier = (column.table or "").lower()
    select = column.find_ancestor(exp.Select)
    while select is not None:
        tables = _scope_tables(select)
        if qualifier and qualifier in tables:
            return schema.column(tables[qualifier], name)
        if not qualifier:
            found = {schema.column(t, name) for t in set(tables.values())} - {None}
            if len(found) == 1:
                return found.pop()
            if found:
                return None  # ambiguous
        select = select.parent.find_ancestor(exp.Select) if select.parent else None
    return None


def _scope_tables(select: Any) -> dict[str, str]:
    """Alias (or name) -> table name of the tables a SELECT reads directly."""
    from sqlglot import exp

    sources = [select.args.get("from_") or select.args.get("from")]
    sources += list(select.args.get("joins") or [])
    tables = {}
    for source in sources:
        if source is not None and isinstance(source.this, exp.Table):
            table = source.this
            tables[table.alias_or_name.lower()] = table.name.lower()
    return tables


def _is_number(node: Any) -> bool:
    from sqlglot import exp

    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string


def _double(write: str) -> str:
    return "DOUBLE PRECISION" if write == "postgres" else "DOUBLE"


def _is_numeric_text(t: str, write: str) -> str:
    """SQL true when text ``t`` is a well-formed number (what SQLite's numeric affinity
    converts, and what a number stored in a mixed column was loaded as)."""
    if write == "postgres":
        return f"({t} ~ '^\\s*{_NUMBER}\\s*$')"
    return f"regexp_full_match({t}, '\\s*{_NUMBER}\\s*')"


def _as_number(t: str, write: str, missing: str = "NULL") -> str:
    """Text ``t`` as a number when it is one; ``missing`` (NULL or NaN) otherwise."""
    other = "NULL" if missing == "NULL" else f"CAST('NaN' AS {_double(write)})"
    return (
        f"(CASE WHEN {t} IS NULL THEN NULL WHEN {_is_numeric_text(t, write)} "
        f"THEN CAST({t} AS {_double(write)}) ELSE {other} END)"
    )


def _numeric_text(t: str, write: str) -> str:
    """Text ``t`` as SQLite's arithmetic and ``sum``/``avg`` read it: its longest numeric
    prefix, 0 when it has none; NULL stays NULL."""
    if write == "postgres":
        prefix = f"CAST(substring({t} FROM '^\\s*{_NUMBER}') AS DOUBLE PRECISION)"
    else:
        prefix = f"TRY_CAST(NULLIF(regexp_extract({t}, '^\\s*{_NUMBER}'), '') AS DOUBLE)"
    return f"(CASE WHEN {t} IS NULL THEN NULL ELSE COALESCE({prefix}, 0) END)"


def _parse(text: str, write: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(text, read=write)
