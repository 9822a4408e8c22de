"""The shape of a query, and the two shortcuts a policy took instead of answering.

:func:`query_shape` reads, with sqlglot (SQLite dialect), whether a query filters (``WHERE``),
joins, groups, aggregates or limits its rows, and which columns it groups by. Where sqlglot
cannot parse a query that SQLite may still run, the lexical scan of
:mod:`sqlgrpo.sql.complexity` decides the same flags (grouped columns then unknown).

Two shortcuts measured in GRPO runs (docs/ablation.md sections 9 and 10) are named here once,
for the progress reward (which pays them no partial credit) and the hack monitors (which count
them):

* **bare SELECT**: the prediction is a query with no ``WHERE``, join, ``GROUP BY``, aggregate
  or ``LIMIT``, where the gold query has at least one of them: ``SELECT cols FROM t`` returns a
  superset of the rows a filtering gold returns, and always runs.
* **GROUP BY a key column**: the prediction groups by a key column (named ``id`` or ``*_id``,
  or a primary key of the schema) where the gold query has no ``GROUP BY``: the padding
  that raised the complexity reward without changing the rows (``SELECT id, x FROM t GROUP BY
  id``).

Pure functions of their text; nothing here executes SQL.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from sqlgrpo.sql.complexity import complexity_features, tokenize
from sqlgrpo.sql.statements import QUERY_TYPES, statement_type

logger = logging.getLogger(__name__)

#: Longer SQL is not parsed: its shape is read by the lexical scan only. sqlglot takes ~0.1 s on
#: hostile 4,000-character text (nested parentheses, operator soup), the scan milliseconds;
#: the SQL of a 512-token completion is shorter than this.
MAX_PARSE_CHARS = 4_000


@dataclass(frozen=True)
class QueryShape:
    """What a query does to its rows (anywhere in it, subqueries included)."""

    where: bool
    join: bool
    grouped: bool
    aggregate: bool
    limit: bool
    group_by: tuple[str, ...] = ()  # grouped column names, lowercased (expressions left out)

    @property
    def narrows(self) -> bool:
        """True when the query filters, joins, groups, aggregates or limits."""
        return self.where or self.join or self.grouped or self.aggregate or self.limit


@functools.lru_cache(maxsize=16_384)
def query_shape(sql: str) -> QueryShape | None:
    """The shape of ``sql`` when it is one query (``SELECT``, ``WITH ... SELECT``, a set
    operation); None for any other statement or an empty text. Never raises."""
    try:
        if statement_type(sql) not in QUERY_TYPES:
            return None
    except Exception:  # noqa: BLE001 - hostile text: not a query we can read
        return None
    parsed = _parsed_shape(sql) if len(sql) <= MAX_PARSE_CHARS else None
    return parsed if parsed is not None else _lexical_shape(sql)


def _parsed_shape(sql: str) -> QueryShape | None:
    """The shape from sqlglot's tree, or None when sqlglot cannot parse ``sql`` as one query."""
    import sqlglot
    from sqlglot import exp

    try:
        trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except Exception:  # noqa: BLE001 - sqlglot errors, RecursionError on deep nesting
        return None
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return None
    tree = trees[0]
    names: list[str] = []
    for group in tree.find_all(exp.Group):
        select = group.parent if isinstance(group.parent, exp.Select) else None
        names.extend(_grouped_name(e, select) for e in group.expressions)
    return QueryShape(
        where=tree.find(exp.Where) is not None,
        join=tree.find(exp.Join) is not None,
        grouped=tree.find(exp.Group) is not None,
        aggregate=tree.find(exp.AggFunc) is not None,
        limit=tree.find(exp.Limit) is not None,
        group_by=tuple(n for n in names if n),
    )


def _grouped_name(expression: object, select: object) -> str:
    """The column name a GROUP BY item groups by ('' for an expression): a column, or the
    select item a position (``GROUP BY 1``) or an output alias points at."""
    from sqlglot import exp

    items = select.expressions if isinstance(select, exp.Select) else []
    if isinstance(expression, exp.Literal) and expression.is_int:
        index = int(expression.this) - 1
        expression = items[index] if 0 <= index < len(items) else None
    elif isinstance(expression, exp.Column) and not expression.table:  # an output alias?
        aliased = [i for i in items if isinstance(i, exp.Alias) and i.alias == expression.name]
        expression = aliased[0] if aliased else expression
    if isinstance(expression, exp.Alias):
        expression = expression.this
    return expression.name.lower() if isinstance(expression, exp.Column) else ""


def _lexical_shape(sql: str) -> QueryShape:
    """The flags from the complexity scan's tokens (no grouped column names)."""
    features = complexity_features(sql)
    return QueryShape(
        where="WHERE" in tokenize(sql),
        join=features.joins > 0,
        grouped=features.group_by > 0,
        aggregate=features.aggregates > 0,
        limit=features.limit > 0,
    )


def is_key_column(name: str, primary_keys: frozenset[str] = frozenset()) -> bool:
    """True for a column named ``id`` or ``*_id`` (any case), or one of ``primary_keys``."""
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id") or lowered in primary_keys


@dataclass(frozen=True)
class Shortcuts:
    """Which of the measured shortcuts a prediction takes against its gold."""

    bare_select: bool = False
    group_by_key: bool = False

    @property
    def any(self) -> bool:
        """True when the prediction takes either shortcut."""
        return self.bare_select or self.group_by_key


def find_shortcuts(
    pred_sql: str | None, gold_sql: str | None, primary_keys: frozenset[str] = frozenset()
) -> Shortcuts:
    """The shortcuts ``pred_sql`` takes against ``gold_sql`` (none when either is missing or
    not a query); ``primary_keys`` are the schema's primary-key columns
    (:func:`sqlgrpo.sql.parsing.primary_key_columns`). Never raises."""
    if not pred_sql or not gold_sql:
        return Shortcuts()
    pred = query_shape(pred_sql)
    gold = query_shape(gold_sql) if pred is not None else None
    if pred is None or gold is None:
        return Shortcuts()
    return Shortcuts(
        bare_select=gold.narrows and not pred.narrows,
        group_by_key=not gold.grouped
        and any(is_key_column(name, primary_keys) for name in pred.group_by),
    )
