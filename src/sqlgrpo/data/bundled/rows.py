"""Seeded rows for a domain's three tables, and the gretel-style context script."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

from sqlgrpo.data.bundled.domains import FIRST_NAMES, LAST_NAMES, PERSON, Domain, Entity

ROW_COUNTS = {"parent": 8, "child": 12, "detail": 12}
CHILDLESS_PARENTS = 2  # parents with no child rows, so NOT IN / LEFT JOIN questions have answers
FIRST_DATE = dt.date(2023, 1, 1)
DATE_SPAN_DAYS = 730


def _name_pool(entity: Entity) -> list[str]:
    if entity.names == PERSON:
        return [f"{first} {last}" for first, last in itertools.product(FIRST_NAMES, LAST_NAMES)]
    if isinstance(entity.names, str) and entity.names.startswith("code:"):
        prefix = entity.names.removeprefix("code:")
        return [f"{prefix}-{n}" for n in range(1000, 10000, 7)]
    return list(entity.names)


def fresh_name(entity: Entity, rows: list[dict[str, Any]], rng: random.Random) -> str | None:
    """A name from the entity's pool that no seeded row uses (None when the pool is spent)."""
    used = {row[entity.name_col] for row in rows}
    unused = [name for name in _name_pool(entity) if name not in used]
    return rng.choice(unused) if unused else None


def _number(entity: Entity, rng: random.Random) -> int | float:
    num = entity.num
    if num.decimals:
        return round(rng.uniform(num.lo, num.hi), num.decimals)
    return rng.randint(int(num.lo), int(num.hi))


def _entity_rows(
    entity: Entity, count: int, rng: random.Random, refs: tuple[str, list[int]] | None
) -> list[dict[str, Any]]:
    names = rng.sample(_name_pool(entity), count) if entity.name_col else []
    # Every category value at least once when there is room, then random repeats.
    cats = list(entity.cat.values)[:count]
    cats += [rng.choice(entity.cat.values) for _ in range(count - len(cats))]
    rng.shuffle(cats)
    rows = []
    for i in range(count):
        row: dict[str, Any] = {entity.key: i + 1}
        if refs is not None:
            row[refs[0]] = rng.choice(refs[1])
        if entity.name_col:
            row[entity.name_col] = names[i]
        row[entity.cat.col] = cats[i]
        row[entity.num.col] = _number(entity, rng)
        if entity.date_col:
            day = FIRST_DATE + dt.timedelta(days=rng.randrange(DATE_SPAN_DAYS))
            row[entity.date_col] = day.isoformat()
        rows.append(row)
    return rows


def domain_rows(domain: Domain, rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """Seeded rows for the parent, child and detail tables."""
    P, C, D = domain.entities
    parents = _entity_rows(P, ROW_COUNTS["parent"], rng, None)
    parent_ids = [row[P.key] for row in parents]
    with_children = sorted(rng.sample(parent_ids, len(parent_ids) - CHILDLESS_PARENTS))
    children = _entity_rows(C, ROW_COUNTS["child"], rng, (P.key, with_children))
    child_ids = [row[C.key] for row in children]
    details = _entity_rows(D, ROW_COUNTS["detail"], rng, (C.key, child_ids))
    return {P.table: parents, C.table: children, D.table: details}


def _create(entity: Entity, parent: Entity | None) -> str:
    cols = [f"{entity.key} INTEGER PRIMARY KEY"]
    if parent is not None:
        cols.append(f"{parent.key} INTEGER REFERENCES {parent.table}({parent.key})")
    if entity.name_col:
        cols.append(f"{entity.name_col} TEXT")
    cols.append(f"{entity.cat.col} TEXT")
    cols.append(f"{entity.num.col} {'REAL' if entity.num.decimals else 'INTEGER'}")
    if entity.date_col:
        cols.append(f"{entity.date_col} DATE")
    return f"CREATE TABLE {entity.table} ({', '.join(cols)});"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _insert(entity: Entity, rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    values = ", ".join("(" + ", ".join(_literal(row[c]) for c in cols) + ")" for row in rows)
    return f"INSERT INTO {entity.table} ({', '.join(cols)}) VALUES {values};"


def context_script(domain: Domain, rows: dict[str, list[dict[str, Any]]]) -> str:
    """CREATE TABLE statements, then one multi-row INSERT per table (gretel's layout)."""
    P, C, D = domain.entities
    creates = [_create(P, None), _create(C, P), _create(D, C)]
    inserts = [_insert(e, rows[e.table]) for e in domain.entities]
    return " ".join(creates + inserts)
