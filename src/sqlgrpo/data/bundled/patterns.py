"""Question / SQL patterns of the bundled dataset, written once for every domain's shape.

A pattern draws its parameters (category values, thresholds) from the domain's seeded
rows, so its gold query returns rows (the generator checks this), and phrases the question
with one of several paraphrases. ``TRAIN_PATTERNS`` appear in both splits;
``HELD_OUT_PATTERNS`` only in the test split.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlgrpo.data.bundled.domains import Domain, Entity

RETRIEVAL = "data retrieval"
ANALYTICS = "analytics and reporting"
MANIPULATION = "data manipulation"


@dataclass(frozen=True)
class Draft:
    """One generated example before it is checked and written."""

    question: str
    sql: str
    explanation: str


class Drafting:
    """What a pattern needs: the domain, its rows, aliases, a seeded RNG and phrasing helpers."""

    def __init__(self, domain: Domain, rows: dict[str, list[dict[str, Any]]], rng: random.Random):
        self.domain = domain
        self.rows = rows
        self.rng = rng
        self.P, self.C, self.D = domain.parent, domain.child, domain.detail
        self.alias: dict[str, str] = {}
        for entity in domain.entities:
            alias = entity.table[0]
            if alias in self.alias.values():
                alias = entity.table[:2]
            self.alias[entity.table] = alias

    def a(self, entity: Entity) -> str:
        """The table alias used in joins."""
        return self.alias[entity.table]

    def choice(self, options: list[Any]) -> Any:
        """One of ``options``."""
        return self.rng.choice(options)

    def values(self, entity: Entity, col: str) -> list[Any]:
        """Values of ``col`` present in the seeded rows (sorted, with repeats)."""
        return sorted(row[col] for row in self.rows[entity.table])

    def category(self, entity: Entity) -> str:
        """A category value that occurs in the rows."""
        return self.choice(sorted(set(self.values(entity, entity.cat.col))))

    def threshold(self, entity: Entity) -> int | float:
        """A round number strictly inside the spread of the entity's numeric column."""
        vals = self.values(entity, entity.num.col)
        n = len(vals)
        value = vals[self.rng.randrange(n // 4, max(n // 4 + 1, (3 * n) // 4))]
        if entity.num.decimals and vals[-1] - vals[0] < 20:
            return round(value, 1)
        return int(value)

    def cat_phrase(self, entity: Entity, value: str) -> str:
        """A filter on the category column, phrased naturally or literally."""
        if self.rng.random() < 0.6:
            return entity.cat.phrase.format(v=value)
        return f"whose {entity.cat.noun} is '{value}'"

    def num_phrase(self, entity: Entity, op: str, value: Any) -> str:
        """A filter on the numeric column (``op`` is '>' or '<')."""
        noun = entity.num.noun
        if op == ">":
            forms = [
                f"with {art(noun)}{noun} greater than {value}",
                f"whose {noun} is above {value}",
                f"with {noun} over {value}",
            ]
        else:
            forms = [
                f"with {art(noun)}{noun} less than {value}",
                f"whose {noun} is below {value}",
                f"with {noun} under {value}",
            ]
        return self.choice(forms)

    def join_pc(self) -> str:
        """``child c JOIN parent p ON ...``."""
        P, C = self.P, self.C
        return (
            f"{C.table} {self.a(C)} JOIN {P.table} {self.a(P)} "
            f"ON {self.a(C)}.{P.key} = {self.a(P)}.{P.key}"
        )

    def join_dcp(self) -> str:
        """``detail d JOIN child c ... JOIN parent p ...``."""
        P, C, D = self.P, self.C, self.D
        return (
            f"{D.table} {self.a(D)} JOIN {C.table} {self.a(C)} "
            f"ON {self.a(D)}.{C.key} = {self.a(C)}.{C.key} "
            f"JOIN {P.table} {self.a(P)} ON {self.a(C)}.{P.key} = {self.a(P)}.{P.key}"
        )


def art(noun: str) -> str:
    """The indefinite article for ``noun`` ("a ", "an ", or "" for plural nouns)."""
    first = noun.split()[0]
    if first.endswith("s") and not first.endswith(("ss", "us")):
        return ""
    return "an " if noun[0].lower() in "aeiou" else "a "


def plural(noun: str) -> str:
    """English plural of a category noun ("status" -> "statuses", "city" -> "cities")."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


PatternFn = Callable[[Drafting], Draft | None]


@dataclass(frozen=True)
class Pattern:
    """A named pattern with gretel's tier (``sql_complexity``) and task type labels."""

    name: str
    tier: str
    task: str
    make: PatternFn


# ----------------------------------------------------------------------------- basic SQL


def basic_filter_category(g: Drafting) -> Draft:
    C = g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"List the {C.name_plural} of all {C.plural} {f}.",
            f"What are the {C.name_plural} of the {C.plural} {f}?",
            f"Show the {C.name_plural} of every {C.singular} {f}.",
            f"Find the {C.name_plural} of {C.plural} {f}.",
        ]
    )
    sql = f"SELECT {C.name_col} FROM {C.table} WHERE {C.cat.col} = '{v}';"
    return Draft(q, sql, f"Selects the {C.name_plural} of {C.plural} whose {C.cat.noun} is '{v}'.")


def basic_filter_number(g: Drafting) -> Draft:
    C = g.C
    t = g.threshold(C)
    op = g.choice([">", "<"])
    f = g.num_phrase(C, op, t)
    q = g.choice(
        [
            f"Which {C.plural} have {art(C.num.noun)}{C.num.noun} {'above' if op == '>' else 'below'} {t}? "
            f"Show their {C.name_plural} and {C.num.noun}.",
            f"List the {C.name_plural} and {C.num.noun} of {C.plural} {f}.",
            f"Show every {C.singular} {f}, with its {C.num.noun}.",
        ]
    )
    sql = f"SELECT {C.name_col}, {C.num.col} FROM {C.table} WHERE {C.num.col} {op} {t};"
    return Draft(
        q, sql, f"Filters {C.table} on {C.num.col} {op} {t} and returns each name and value."
    )


def basic_parent_category(g: Drafting) -> Draft:
    P = g.P
    v = g.category(P)
    f = g.cat_phrase(P, v)
    q = g.choice(
        [
            f"List the {P.name_plural} of all {P.plural} {f}.",
            f"Which {P.plural} are there {f}? Give their {P.name_plural}.",
            f"Show the {P.name_plural} of {P.plural} {f}.",
        ]
    )
    sql = f"SELECT {P.name_col} FROM {P.table} WHERE {P.cat.col} = '{v}';"
    return Draft(q, sql, f"Selects the {P.name_plural} of {P.plural} whose {P.cat.noun} is '{v}'.")


def basic_top_n(g: Drafting) -> Draft:
    C = g.C
    n = g.choice([2, 3, 4, 5])
    top = g.choice([True, False])
    word = "highest" if top else "lowest"
    q = g.choice(
        [
            f"What are the {n} {C.plural} with the {word} {C.num.noun}? Show {C.name_col.replace('_', ' ')} and {C.num.noun}.",
            f"List the {C.name_plural} and {C.num.noun} of the {n} {C.plural} with the {word} {C.num.noun}.",
            f"Show the {'top' if top else 'bottom'} {n} {C.plural} by {C.num.noun}, {word} first.",
        ]
    )
    order = "DESC" if top else "ASC"
    sql = f"SELECT {C.name_col}, {C.num.col} FROM {C.table} ORDER BY {C.num.col} {order} LIMIT {n};"
    return Draft(q, sql, f"Sorts {C.table} by {C.num.col} {order} and keeps the first {n} rows.")


def basic_two_conditions(g: Drafting) -> Draft | None:
    C = g.C
    v = g.category(C)
    t = g.threshold(C)
    op = g.choice([">", "<"])
    q = g.choice(
        [
            f"Find the {C.name_plural} of {C.plural} {g.cat_phrase(C, v)} {g.num_phrase(C, op, t)}.",
            f"Which {C.plural} {g.cat_phrase(C, v)} have {art(C.num.noun)}{C.num.noun} "
            f"{'greater' if op == '>' else 'less'} than {t}? List their {C.name_plural}.",
        ]
    )
    sql = f"SELECT {C.name_col} FROM {C.table} WHERE {C.cat.col} = '{v}' AND {C.num.col} {op} {t};"
    return Draft(
        q, sql, f"Combines a filter on {C.cat.col} = '{v}' with {C.num.col} {op} {t} using AND."
    )


def basic_date_filter(g: Drafting) -> Draft:
    C = g.C
    dates = g.values(C, C.date_col)
    d = dates[g.rng.randrange(len(dates) // 4, (3 * len(dates)) // 4)]
    after = g.choice([True, False])
    word, op = ("on or after", ">=") if after else ("before", "<")
    q = g.choice(
        [
            f"List the {C.name_plural} of {C.plural} with {art(C.date_noun)}{C.date_noun} {word} {d}, with their {C.date_noun}, oldest first.",
            f"Which {C.plural} have {art(C.date_noun)}{C.date_noun} {word} {d}? Show {C.name_plural} and dates in date order.",
        ]
    )
    sql = (
        f"SELECT {C.name_col}, {C.date_col} FROM {C.table} WHERE {C.date_col} {op} '{d}' "
        f"ORDER BY {C.date_col};"
    )
    return Draft(
        q, sql, f"Compares the ISO date column {C.date_col} with '{d}' and orders by date."
    )


# ----------------------------------------------------------------------------- aggregation


def agg_count_category(g: Drafting) -> Draft:
    C = g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"How many {C.plural} are there {f}?",
            f"Count the {C.plural} {f}.",
            f"What is the number of {C.plural} {f}?",
        ]
    )
    sql = f"SELECT COUNT(*) FROM {C.table} WHERE {C.cat.col} = '{v}';"
    return Draft(q, sql, f"Counts the rows of {C.table} whose {C.cat.col} is '{v}'.")


def agg_average(g: Drafting) -> Draft:
    C = g.C
    if g.rng.random() < 0.5:
        q = g.choice(
            [
                f"What is the average {C.num.noun} of all {C.plural}?",
                f"Calculate the average {C.num.noun} across {C.plural}.",
                f"Find the mean {C.num.noun} of the {C.plural}.",
            ]
        )
        sql = f"SELECT AVG({C.num.col}) FROM {C.table};"
        return Draft(q, sql, f"Averages {C.num.col} over every row of {C.table}.")
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"What is the average {C.num.noun} of {C.plural} {f}?",
            f"Calculate the average {C.num.noun} for {C.plural} {f}.",
        ]
    )
    sql = f"SELECT AVG({C.num.col}) FROM {C.table} WHERE {C.cat.col} = '{v}';"
    return Draft(
        q, sql, f"Averages {C.num.col} over the {C.table} rows whose {C.cat.col} is '{v}'."
    )


def agg_sum_detail(g: Drafting) -> Draft:
    D = g.D
    v = g.category(D)
    f = g.cat_phrase(D, v)
    q = g.choice(
        [
            f"What is the total {D.num.noun} of {D.plural} {f}?",
            f"Sum the {D.num.noun} of all {D.plural} {f}.",
            f"Find the total {D.num.noun} across {D.plural} {f}.",
        ]
    )
    sql = f"SELECT SUM({D.num.col}) FROM {D.table} WHERE {D.cat.col} = '{v}';"
    return Draft(q, sql, f"Adds up {D.num.col} over the {D.table} rows whose {D.cat.col} is '{v}'.")


def agg_max_min(g: Drafting) -> Draft:
    E = g.choice([g.P, g.C])
    top = g.choice([True, False])
    fn, word = (
        ("MAX", g.choice(["highest", "maximum", "largest"]))
        if top
        else ("MIN", g.choice(["lowest", "minimum", "smallest"]))
    )
    q = g.choice(
        [
            f"What is the {word} {E.num.noun} among all {E.plural}?",
            f"Find the {word} {E.num.noun} of any {E.singular}.",
        ]
    )
    sql = f"SELECT {fn}({E.num.col}) FROM {E.table};"
    return Draft(q, sql, f"Uses {fn} to find the {word} {E.num.col} in {E.table}.")


def group_count(g: Drafting) -> Draft:
    E = g.choice([g.P, g.C, g.D])
    q = g.choice(
        [
            f"How many {E.plural} are there for each {E.cat.noun}?",
            f"Count the {E.plural} per {E.cat.noun}.",
            f"Show the number of {E.plural} in each {E.cat.noun}.",
        ]
    )
    sql = f"SELECT {E.cat.col}, COUNT(*) FROM {E.table} GROUP BY {E.cat.col};"
    return Draft(q, sql, f"Groups {E.table} by {E.cat.col} and counts the rows in each group.")


def group_average(g: Drafting) -> Draft:
    E = g.choice([g.P, g.C, g.D])
    fn, word = g.choice([("AVG", "average"), ("SUM", "total"), ("MAX", "highest")])
    q = g.choice(
        [
            f"What is the {word} {E.num.noun} of {E.plural} for each {E.cat.noun}?",
            f"Show the {word} {E.num.noun} per {E.cat.noun} across {E.plural}.",
        ]
    )
    sql = f"SELECT {E.cat.col}, {fn}({E.num.col}) FROM {E.table} GROUP BY {E.cat.col};"
    return Draft(
        q, sql, f"Groups {E.table} by {E.cat.col} and computes {fn}({E.num.col}) per group."
    )


def group_having(g: Drafting) -> Draft | None:
    E = g.choice([g.C, g.D])
    counts: dict[str, int] = {}
    for value in g.values(E, E.cat.col):
        counts[value] = counts.get(value, 0) + 1
    k = g.choice(sorted(set(counts.values())))
    word = g.choice(["at least", "more than"])
    op, k = (">=", k) if word == "at least" else (">", k - 1)
    if k < 1:
        return None
    q = g.choice(
        [
            f"Which {E.cat.noun} values have {word} {k} {E.plural}? Show each with its count.",
            f"List the {plural(E.cat.noun)} with {word} {k} {E.plural}, together with the number of {E.plural}.",
        ]
    )
    sql = (
        f"SELECT {E.cat.col}, COUNT(*) FROM {E.table} GROUP BY {E.cat.col} "
        f"HAVING COUNT(*) {op} {k};"
    )
    return Draft(
        q,
        sql,
        f"Groups {E.table} by {E.cat.col} and keeps groups whose count is {op} {k} with HAVING.",
    )


# ----------------------------------------------------------------------------- joins


def join_parent_category(g: Drafting) -> Draft:
    P, C = g.P, g.C
    v = g.category(P)
    f = g.cat_phrase(P, v)
    q = g.choice(
        [
            f"List the {C.name_plural} of {C.plural} belonging to {P.plural} {f}.",
            f"What are the {C.name_plural} of all {C.plural} whose {P.singular} is {P.cat.phrase.format(v=v)}?",
            f"Show the {C.name_plural} of {C.plural} linked to {P.plural} {f}.",
        ]
    )
    sql = f"SELECT {g.a(C)}.{C.name_col} FROM {g.join_pc()} WHERE {g.a(P)}.{P.cat.col} = '{v}';"
    return Draft(
        q,
        sql,
        f"Joins {C.table} to {P.table} on {P.key} and filters on the {P.singular}'s {P.cat.col}.",
    )


def join_list_with_parent(g: Drafting) -> Draft:
    P, C = g.P, g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"List each {C.singular} {f} with the name of its {P.singular}.",
            f"Show the {C.name_plural} of {C.plural} {f} together with their {P.singular}'s name.",
        ]
    )
    sql = (
        f"SELECT {g.a(C)}.{C.name_col}, {g.a(P)}.{P.name_col} FROM {g.join_pc()} "
        f"WHERE {g.a(C)}.{C.cat.col} = '{v}';"
    )
    return Draft(
        q,
        sql,
        f"Joins {C.table} with {P.table} to pair each filtered {C.singular} with its {P.singular} name.",
    )


def join_group_total(g: Drafting) -> Draft:
    P, C = g.P, g.C
    fn, word = g.choice([("SUM", "total"), ("AVG", "average"), ("MAX", "highest")])
    q = g.choice(
        [
            f"What is the {word} {C.num.noun} of {C.plural} for each {P.singular}? Show the {P.singular} name.",
            f"For every {P.singular}, show its name and the {word} {C.num.noun} of its {C.plural}.",
        ]
    )
    sql = (
        f"SELECT {g.a(P)}.{P.name_col}, {fn}({g.a(C)}.{C.num.col}) FROM {g.join_pc()} "
        f"GROUP BY {g.a(P)}.{P.name_col};"
    )
    return Draft(
        q,
        sql,
        f"Joins {C.table} to {P.table} and aggregates {C.num.col} with {fn} per {P.singular}.",
    )


def join_count_per_parent(g: Drafting) -> Draft | None:
    P, C = g.P, g.C
    counts: dict[Any, int] = {}
    for row in g.rows[C.table]:
        counts[row[P.key]] = counts.get(row[P.key], 0) + 1
    k = g.choice([c for c in sorted(set(counts.values())) if c >= 2] or [2])
    q = g.choice(
        [
            f"Which {P.plural} have at least {k} {C.plural}? Show the name and the number of {C.plural}.",
            f"List the {P.plural} with {k} or more {C.plural}, with their {C.singular} count.",
        ]
    )
    sql = (
        f"SELECT {g.a(P)}.{P.name_col}, COUNT(*) FROM {g.join_pc()} "
        f"GROUP BY {g.a(P)}.{P.name_col} HAVING COUNT(*) >= {k};"
    )
    return Draft(
        q,
        sql,
        f"Joins and groups {C.table} by {P.singular}, keeping {P.plural} with at least {k} rows.",
    )


def multi_join_filter(g: Drafting) -> Draft:
    P, C, D = g.P, g.C, g.D
    v = g.category(D)
    f = g.cat_phrase(D, v)
    q = g.choice(
        [
            f"For {D.plural} {f}, show the {P.singular} name, the {C.singular} {C.name_col.replace('_', ' ')} and the {D.num.noun}.",
            f"List the {D.num.noun} of every {D.singular} {f} along with its {C.singular}'s {C.name_col.replace('_', ' ')} and {P.singular} name.",
        ]
    )
    sql = (
        f"SELECT {g.a(P)}.{P.name_col}, {g.a(C)}.{C.name_col}, {g.a(D)}.{D.num.col} "
        f"FROM {g.join_dcp()} WHERE {g.a(D)}.{D.cat.col} = '{v}';"
    )
    return Draft(
        q,
        sql,
        f"Joins {D.table}, {C.table} and {P.table} and filters {D.table} on {D.cat.col} = '{v}'.",
    )


def multi_join_total(g: Drafting) -> Draft:
    P, D = g.P, g.D
    if g.rng.random() < 0.5:
        q = g.choice(
            [
                f"What is the total {D.num.noun} of {D.plural} for each {P.singular}?",
                f"For each {P.singular}, show its name and the total {D.num.noun} of its {D.plural}.",
            ]
        )
        sql = (
            f"SELECT {g.a(P)}.{P.name_col}, SUM({g.a(D)}.{D.num.col}) FROM {g.join_dcp()} "
            f"GROUP BY {g.a(P)}.{P.name_col};"
        )
        return Draft(q, sql, f"Joins all three tables and sums {D.num.col} per {P.singular}.")
    v = g.category(P)
    f = g.cat_phrase(P, v)
    q = g.choice(
        [
            f"What is the total {D.num.noun} of {D.plural} linked to {P.plural} {f}?",
            f"Sum the {D.num.noun} of all {D.plural} for {P.plural} {f}.",
        ]
    )
    sql = (
        f"SELECT SUM({g.a(D)}.{D.num.col}) FROM {g.join_dcp()} WHERE {g.a(P)}.{P.cat.col} = '{v}';"
    )
    return Draft(
        q,
        sql,
        f"Joins all three tables, keeps {P.plural} with {P.cat.col} = '{v}' and sums {D.num.col}.",
    )


# ----------------------------------------------------------------------------- subqueries


def subquery_above_average(g: Drafting) -> Draft:
    E = g.choice([g.P, g.C])
    word, op = g.choice([("above", ">"), ("below", "<")])
    q = g.choice(
        [
            f"Which {E.plural} have {art(E.num.noun)}{E.num.noun} {word} the average? Show {E.name_plural} and {E.num.noun}.",
            f"List the {E.plural} whose {E.num.noun} is {word} the average {E.num.noun} of all {E.plural}.",
        ]
    )
    sql = (
        f"SELECT {E.name_col}, {E.num.col} FROM {E.table} "
        f"WHERE {E.num.col} {op} (SELECT AVG({E.num.col}) FROM {E.table});"
    )
    return Draft(
        q, sql, f"Compares each {E.num.col} with the average computed by a scalar subquery."
    )


def subquery_in(g: Drafting) -> Draft:
    P, C = g.P, g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"Which {P.plural} have at least one {C.singular} {f}? Give their {P.name_plural}.",
            f"List the {P.name_plural} of {P.plural} that have {C.plural} {f}.",
        ]
    )
    sql = (
        f"SELECT {P.name_col} FROM {P.table} WHERE {P.key} IN "
        f"(SELECT {P.key} FROM {C.table} WHERE {C.cat.col} = '{v}');"
    )
    return Draft(
        q,
        sql,
        f"Uses an IN subquery to keep {P.plural} referenced by {C.plural} with {C.cat.col} = '{v}'.",
    )


def subquery_not_in(g: Drafting) -> Draft:
    P, C = g.P, g.C
    q = g.choice(
        [
            f"Which {P.plural} have no {C.plural}? List their {P.name_plural}.",
            f"List the {P.name_plural} of {P.plural} without any {C.plural}.",
            f"Find {P.plural} that do not appear in the {C.table} table.",
        ]
    )
    sql = (
        f"SELECT {P.name_col} FROM {P.table} WHERE {P.key} NOT IN (SELECT {P.key} FROM {C.table});"
    )
    return Draft(
        q, sql, f"Uses NOT IN with a subquery to find {P.plural} never referenced by {C.table}."
    )


# ----------------------------------------------------------------------------- windows


def window_rank(g: Drafting) -> Draft:
    C = g.C
    fn = g.choice(["RANK", "DENSE_RANK"])
    q = g.choice(
        [
            f"Rank the {C.plural} by {C.num.noun} within each {C.cat.noun}, highest first.",
            f"For each {C.singular}, show its {C.cat.noun}, {C.num.noun} and its rank by {C.num.noun} within the {C.cat.noun}.",
        ]
    )
    if fn == "DENSE_RANK":
        q = (
            q.replace("rank", "dense rank", 1)
            if "its rank" in q
            else q.replace("Rank", "Dense-rank", 1)
        )
    sql = (
        f"SELECT {C.name_col}, {C.cat.col}, {C.num.col}, {fn}() OVER (PARTITION BY {C.cat.col} "
        f"ORDER BY {C.num.col} DESC) AS rnk FROM {C.table};"
    )
    return Draft(
        q, sql, f"Uses {fn}() over a window partitioned by {C.cat.col} and ordered by {C.num.col}."
    )


def window_running_total(g: Drafting) -> Draft:
    C = g.C
    fn, word = g.choice([("SUM", "running total"), ("AVG", "running average")])
    q = g.choice(
        [
            f"Show the {word} of {C.num.noun} for {C.plural} ordered by {C.date_noun}.",
            f"List each {C.singular}'s {C.date_noun} and {C.num.noun} with a {word} over time.",
        ]
    )
    sql = (
        f"SELECT {C.date_col}, {C.num.col}, {fn}({C.num.col}) OVER (ORDER BY {C.date_col}, {C.key}) "
        f"AS running_value FROM {C.table} ORDER BY {C.date_col}, {C.key};"
    )
    return Draft(
        q, sql, f"Computes a cumulative {fn} of {C.num.col} with a window ordered by {C.date_col}."
    )


# ----------------------------------------------------------------------------- CTEs


def cte_totals_filter(g: Drafting) -> Draft | None:
    P, C = g.P, g.C
    totals: dict[Any, float] = {}
    for row in g.rows[C.table]:
        totals[row[P.key]] = totals.get(row[P.key], 0) + row[C.num.col]
    ordered = sorted(totals.values())
    t = int(
        ordered[g.rng.randrange(len(ordered) // 4, max(len(ordered) // 4 + 1, len(ordered) - 1))]
    )
    q = g.choice(
        [
            f"Using a CTE, find the {P.plural} whose {C.plural} have a total {C.num.noun} above {t}.",
            f"Which {P.plural} have a combined {C.num.noun} of more than {t} across their {C.plural}? Show name and total.",
        ]
    )
    sql = (
        f"WITH totals AS (SELECT {P.key}, SUM({C.num.col}) AS total FROM {C.table} GROUP BY {P.key}) "
        f"SELECT {g.a(P)}.{P.name_col}, tot.total FROM totals tot JOIN {P.table} {g.a(P)} "
        f"ON tot.{P.key} = {g.a(P)}.{P.key} WHERE tot.total > {t};"
    )
    return Draft(
        q,
        sql,
        f"A CTE sums {C.num.col} per {P.singular}; the main query joins names and keeps totals above {t}.",
    )


def cte_category_share(g: Drafting) -> Draft:
    C = g.C
    q = g.choice(
        [
            f"Using a CTE, count {C.plural} per {C.cat.noun} and show the {C.cat.noun} with the most {C.plural}.",
            f"Which {C.cat.noun} has the largest number of {C.plural}? Use a common table expression.",
        ]
    )
    sql = (
        f"WITH counts AS (SELECT {C.cat.col}, COUNT(*) AS n FROM {C.table} GROUP BY {C.cat.col}) "
        f"SELECT {C.cat.col}, n FROM counts WHERE n = (SELECT MAX(n) FROM counts);"
    )
    return Draft(
        q, sql, f"A CTE counts {C.table} per {C.cat.col}; the outer query keeps the largest count."
    )


# ----------------------------------------------------------------------------- set operations


def set_union(g: Drafting) -> Draft | None:
    P, C = g.P, g.C
    v1, v2 = g.category(P), g.category(C)
    q = g.choice(
        [
            f"List the {P.name_plural} of {P.plural} that are {P.cat.phrase.format(v=v1)} or have {art(C.singular)}{C.singular} {C.cat.phrase.format(v=v2)}.",
            f"Combine the {P.plural} {g.cat_phrase(P, v1)} with the {P.plural} that have {C.plural} {g.cat_phrase(C, v2)}; show distinct names.",
        ]
    )
    sql = (
        f"SELECT {P.name_col} FROM {P.table} WHERE {P.cat.col} = '{v1}' UNION "
        f"SELECT {g.a(P)}.{P.name_col} FROM {g.join_pc()} WHERE {g.a(C)}.{C.cat.col} = '{v2}';"
    )
    return Draft(q, sql, "UNION merges both name lists and removes duplicates.")


def set_except(g: Drafting) -> Draft:
    P, C = g.P, g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"Which {P.plural} have no {C.plural} {f}? Use a set difference.",
            f"List the {P.name_plural} of all {P.plural} except those with {art(C.singular)}{C.singular} {f}.",
        ]
    )
    sql = (
        f"SELECT {P.name_col} FROM {P.table} EXCEPT SELECT {g.a(P)}.{P.name_col} "
        f"FROM {g.join_pc()} WHERE {g.a(C)}.{C.cat.col} = '{v}';"
    )
    return Draft(
        q,
        sql,
        f"EXCEPT removes the {P.plural} that have {art(C.singular)}{C.singular} with {C.cat.col} = '{v}'.",
    )


# ----------------------------------------------------------------------------- DML


def _literal(value: Any) -> str:
    return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else str(value)


def dml_insert(g: Drafting) -> Draft | None:
    P = g.P
    from sqlgrpo.data.bundled.rows import fresh_name  # avoids a cycle at import time

    name = fresh_name(P, g.rows[P.table], g.rng)
    if name is None:
        return None
    key = max(row[P.key] for row in g.rows[P.table]) + 1
    v = g.choice(list(P.cat.values))
    num = g.threshold(P)
    q = g.choice(
        [
            f"Add a new {P.singular} with ID {key}, named '{name}', {P.cat.noun} '{v}' and {P.num.noun} {num}.",
            f"Insert {art(P.singular)}{P.singular} (ID {key}) called '{name}' {P.cat.phrase.format(v=v)} with {art(P.num.noun)}{P.num.noun} of {num}.",
        ]
    )
    sql = (
        f"INSERT INTO {P.table} ({P.key}, {P.name_col}, {P.cat.col}, {P.num.col}) "
        f"VALUES ({key}, {_literal(name)}, '{v}', {num});"
    )
    return Draft(q, sql, f"Inserts one new row into {P.table} with the given values.")


def dml_update(g: Drafting) -> Draft:
    C = g.C
    v = g.category(C)
    if g.rng.random() < 0.6:
        pct = g.choice([5, 10, 15, 20, 25])
        up = g.choice([True, False])
        factor = round(1 + pct / 100 if up else 1 - pct / 100, 2)
        verb = "Increase" if up else "Decrease"
        q = g.choice(
            [
                f"{verb} the {C.num.noun} of all {C.plural} {g.cat_phrase(C, v)} by {pct}%.",
                f"{verb} by {pct} percent the {C.num.noun} of every {C.singular} {g.cat_phrase(C, v)}.",
            ]
        )
        sql = (
            f"UPDATE {C.table} SET {C.num.col} = {C.num.col} * {factor} WHERE {C.cat.col} = '{v}';"
        )
        return Draft(
            q, sql, f"Multiplies {C.num.col} by {factor} for rows whose {C.cat.col} is '{v}'."
        )
    row = g.choice(g.rows[C.table])
    new = g.choice([x for x in C.cat.values if x != row[C.cat.col]])
    q = g.choice(
        [
            f"Change the {C.cat.noun} of the {C.singular} with ID {row[C.key]} to '{new}'.",
            f"Set the {C.cat.noun} of {C.singular} {row[C.key]} to '{new}'.",
        ]
    )
    sql = f"UPDATE {C.table} SET {C.cat.col} = '{new}' WHERE {C.key} = {row[C.key]};"
    return Draft(q, sql, f"Updates {C.cat.col} of a single {C.singular} identified by {C.key}.")


def dml_delete(g: Drafting) -> Draft:
    D = g.D
    if g.rng.random() < 0.5:
        t = g.threshold(D)
        q = g.choice(
            [
                f"Delete all {D.plural} with {art(D.num.noun)}{D.num.noun} below {t}.",
                f"Remove every {D.singular} whose {D.num.noun} is less than {t}.",
            ]
        )
        sql = f"DELETE FROM {D.table} WHERE {D.num.col} < {t};"
        return Draft(q, sql, f"Deletes the {D.table} rows whose {D.num.col} is below {t}.")
    v = g.category(D)
    f = g.cat_phrase(D, v)
    q = g.choice([f"Delete all {D.plural} {f}.", f"Remove the {D.plural} {f} from the table."])
    sql = f"DELETE FROM {D.table} WHERE {D.cat.col} = '{v}';"
    return Draft(q, sql, f"Deletes the {D.table} rows whose {D.cat.col} is '{v}'.")


# ----------------------------------------------------------------------------- held out


def heldout_between(g: Drafting) -> Draft | None:
    C = g.C
    vals = g.values(C, C.num.col)
    lo, hi = int(vals[len(vals) // 4]), int(vals[(3 * len(vals)) // 4]) + 1
    lo = max(0, lo - g.rng.randrange(0, 3))
    q = g.choice(
        [
            f"List the {C.name_plural} of {C.plural} with {art(C.num.noun)}{C.num.noun} between {lo} and {hi}.",
            f"Which {C.plural} have {art(C.num.noun)}{C.num.noun} from {lo} to {hi} inclusive?",
        ]
    )
    sql = f"SELECT {C.name_col} FROM {C.table} WHERE {C.num.col} BETWEEN {lo} AND {hi};"
    return Draft(q, sql, f"Uses BETWEEN to keep {C.table} rows with {C.num.col} in [{lo}, {hi}].")


def heldout_count_distinct(g: Drafting) -> Draft:
    P, C = g.P, g.C
    v = g.category(C)
    q = g.choice(
        [
            f"How many different {P.plural} have at least one {C.singular} {g.cat_phrase(C, v)}?",
            f"Count the distinct {P.plural} that have {C.plural} {g.cat_phrase(C, v)}.",
        ]
    )
    sql = f"SELECT COUNT(DISTINCT {P.key}) FROM {C.table} WHERE {C.cat.col} = '{v}';"
    return Draft(
        q,
        sql,
        f"COUNT(DISTINCT {P.key}) counts each {P.singular} once among the filtered {C.plural}.",
    )


def heldout_having_average(g: Drafting) -> Draft:
    C = g.C
    t = g.threshold(C)
    q = g.choice(
        [
            f"Which {C.cat.noun} values have an average {C.num.noun} above {t}? Show the average too.",
            f"List each {C.cat.noun} whose {C.plural} average more than {t} in {C.num.noun}.",
        ]
    )
    sql = (
        f"SELECT {C.cat.col}, AVG({C.num.col}) FROM {C.table} GROUP BY {C.cat.col} "
        f"HAVING AVG({C.num.col}) > {t};"
    )
    return Draft(
        q, sql, f"Groups by {C.cat.col} and keeps groups whose average {C.num.col} exceeds {t}."
    )


def heldout_left_join_count(g: Drafting) -> Draft:
    P, C = g.P, g.C
    q = g.choice(
        [
            f"Show every {P.singular} with the number of {C.plural} it has, including {P.plural} with none.",
            f"For all {P.plural}, count their {C.plural}; {P.plural} without {C.plural} should show 0.",
        ]
    )
    sql = (
        f"SELECT {g.a(P)}.{P.name_col}, COUNT({g.a(C)}.{C.key}) FROM {P.table} {g.a(P)} "
        f"LEFT JOIN {C.table} {g.a(C)} ON {g.a(P)}.{P.key} = {g.a(C)}.{P.key} "
        f"GROUP BY {g.a(P)}.{P.name_col};"
    )
    return Draft(q, sql, f"A LEFT JOIN keeps {P.plural} without {C.plural}, whose count is then 0.")


def heldout_max_in_category(g: Drafting) -> Draft:
    C = g.C
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"Which {C.singular} {f} has the highest {C.num.noun}?",
            f"Find the {C.singular} with the largest {C.num.noun} among {C.plural} {f}.",
        ]
    )
    sql = (
        f"SELECT {C.name_col}, {C.num.col} FROM {C.table} WHERE {C.cat.col} = '{v}' AND "
        f"{C.num.col} = (SELECT MAX({C.num.col}) FROM {C.table} WHERE {C.cat.col} = '{v}');"
    )
    return Draft(
        q,
        sql,
        f"A scalar subquery finds the maximum {C.num.col} within '{v}' and the outer query matches it.",
    )


def heldout_top_per_group(g: Drafting) -> Draft:
    C = g.C
    q = g.choice(
        [
            f"For each {C.cat.noun}, show the {C.singular} with the highest {C.num.noun}.",
            f"Find the top {C.singular} by {C.num.noun} in every {C.cat.noun} using ROW_NUMBER.",
        ]
    )
    sql = (
        f"SELECT {C.name_col}, {C.cat.col}, {C.num.col} FROM (SELECT {C.name_col}, {C.cat.col}, "
        f"{C.num.col}, ROW_NUMBER() OVER (PARTITION BY {C.cat.col} ORDER BY {C.num.col} DESC) AS rn "
        f"FROM {C.table}) ranked WHERE rn = 1;"
    )
    return Draft(
        q,
        sql,
        f"ROW_NUMBER() per {C.cat.col} ordered by {C.num.col} picks the first row of each group.",
    )


def heldout_cte_above_overall(g: Drafting) -> Draft:
    P, C = g.P, g.C
    q = g.choice(
        [
            f"Using a CTE, list the {P.plural} whose average {C.singular} {C.num.noun} is above the overall average.",
            f"Which {P.plural} have an average {C.num.noun} of their {C.plural} higher than the average over all {C.plural}?",
        ]
    )
    sql = (
        f"WITH per_parent AS (SELECT {P.key}, AVG({C.num.col}) AS avg_value FROM {C.table} "
        f"GROUP BY {P.key}) SELECT {g.a(P)}.{P.name_col}, pp.avg_value FROM per_parent pp "
        f"JOIN {P.table} {g.a(P)} ON pp.{P.key} = {g.a(P)}.{P.key} "
        f"WHERE pp.avg_value > (SELECT AVG({C.num.col}) FROM {C.table});"
    )
    return Draft(
        q, sql, f"A CTE averages {C.num.col} per {P.singular}, compared with the overall average."
    )


def heldout_intersect(g: Drafting) -> Draft | None:
    P, C = g.P, g.C
    cats = sorted(set(g.values(C, C.cat.col)))
    if len(cats) < 2:
        return None
    v1, v2 = g.rng.sample(cats, 2)
    q = g.choice(
        [
            f"Which {P.plural} have both {art(C.singular)}{C.singular} {C.cat.phrase.format(v=v1)} and one {C.cat.phrase.format(v=v2)}?",
            f"List the {P.name_plural} of {P.plural} with {C.plural} {g.cat_phrase(C, v1)} as well as {C.plural} {g.cat_phrase(C, v2)}.",
        ]
    )
    sql = (
        f"SELECT {g.a(P)}.{P.name_col} FROM {g.join_pc()} WHERE {g.a(C)}.{C.cat.col} = '{v1}' "
        f"INTERSECT SELECT {g.a(P)}.{P.name_col} FROM {g.join_pc()} "
        f"WHERE {g.a(C)}.{C.cat.col} = '{v2}';"
    )
    return Draft(q, sql, "INTERSECT keeps only the names present in both filtered lists.")


def heldout_delete_subquery(g: Drafting) -> Draft:
    C, D = g.C, g.D
    v = g.category(C)
    f = g.cat_phrase(C, v)
    q = g.choice(
        [
            f"Delete all {D.plural} that belong to {C.plural} {f}.",
            f"Remove the {D.plural} of every {C.singular} {f}.",
        ]
    )
    sql = (
        f"DELETE FROM {D.table} WHERE {C.key} IN "
        f"(SELECT {C.key} FROM {C.table} WHERE {C.cat.col} = '{v}');"
    )
    return Draft(
        q, sql, f"Deletes {D.table} rows whose {C.key} is returned by a subquery on {C.table}."
    )


TRAIN_PATTERNS: tuple[Pattern, ...] = (
    Pattern("filter_category", "basic SQL", RETRIEVAL, basic_filter_category),
    Pattern("filter_number", "basic SQL", RETRIEVAL, basic_filter_number),
    Pattern("filter_parent_category", "basic SQL", RETRIEVAL, basic_parent_category),
    Pattern("top_n", "basic SQL", RETRIEVAL, basic_top_n),
    Pattern("two_conditions", "basic SQL", RETRIEVAL, basic_two_conditions),
    Pattern("date_filter", "basic SQL", RETRIEVAL, basic_date_filter),
    Pattern("count_category", "aggregation", ANALYTICS, agg_count_category),
    Pattern("average", "aggregation", ANALYTICS, agg_average),
    Pattern("sum_detail", "aggregation", ANALYTICS, agg_sum_detail),
    Pattern("max_min", "aggregation", ANALYTICS, agg_max_min),
    Pattern("group_count", "aggregation", ANALYTICS, group_count),
    Pattern("group_aggregate", "aggregation", ANALYTICS, group_average),
    Pattern("group_having", "aggregation", ANALYTICS, group_having),
    Pattern("join_parent_category", "single join", RETRIEVAL, join_parent_category),
    Pattern("join_with_parent", "single join", RETRIEVAL, join_list_with_parent),
    Pattern("join_group_aggregate", "single join", ANALYTICS, join_group_total),
    Pattern("join_count_having", "single join", ANALYTICS, join_count_per_parent),
    Pattern("multi_join_filter", "multiple_joins", RETRIEVAL, multi_join_filter),
    Pattern("multi_join_total", "multiple_joins", ANALYTICS, multi_join_total),
    Pattern("above_average", "subqueries", RETRIEVAL, subquery_above_average),
    Pattern("in_subquery", "subqueries", RETRIEVAL, subquery_in),
    Pattern("not_in_subquery", "subqueries", RETRIEVAL, subquery_not_in),
    Pattern("rank_window", "window functions", ANALYTICS, window_rank),
    Pattern("running_window", "window functions", ANALYTICS, window_running_total),
    Pattern("cte_totals", "CTEs", ANALYTICS, cte_totals_filter),
    Pattern("cte_most_common", "CTEs", ANALYTICS, cte_category_share),
    Pattern("union", "set operations", RETRIEVAL, set_union),
    Pattern("except", "set operations", RETRIEVAL, set_except),
    Pattern("insert", "basic SQL", MANIPULATION, dml_insert),
    Pattern("update", "basic SQL", MANIPULATION, dml_update),
    Pattern("delete", "basic SQL", MANIPULATION, dml_delete),
)

HELD_OUT_PATTERNS: tuple[Pattern, ...] = (
    Pattern("between", "basic SQL", RETRIEVAL, heldout_between),
    Pattern("count_distinct", "aggregation", ANALYTICS, heldout_count_distinct),
    Pattern("having_average", "aggregation", ANALYTICS, heldout_having_average),
    Pattern("left_join_count", "single join", ANALYTICS, heldout_left_join_count),
    Pattern("max_in_category", "subqueries", RETRIEVAL, heldout_max_in_category),
    Pattern("top_per_group", "window functions", ANALYTICS, heldout_top_per_group),
    Pattern("cte_above_overall", "CTEs", ANALYTICS, heldout_cte_above_overall),
    Pattern("intersect", "set operations", RETRIEVAL, heldout_intersect),
    Pattern("delete_subquery", "subqueries", MANIPULATION, heldout_delete_subquery),
)
