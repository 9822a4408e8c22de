"""Deterministic generator of the bundled dataset (``sqlgrpo data generate``).

Same seed, same code: byte-identical ``train.jsonl``, ``test.jsonl`` and ``manifest.json``.
The train split covers the train domains with the train patterns; the test split holds
the held-out patterns on the train domains plus every pattern on the held-out domains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from sqlgrpo.data.bundled.domains import DOMAINS, Domain
from sqlgrpo.data.bundled.patterns import (
    HELD_OUT_PATTERNS,
    TRAIN_PATTERNS,
    Draft,
    Drafting,
    Pattern,
)
from sqlgrpo.data.bundled.rows import context_script, domain_rows

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent
SEED = 20251126
TRAIN_VARIANTS = 6  # distinct examples per (train domain, train pattern)
TEST_VARIANTS = 3  # distinct examples per (domain, pattern) in the test split
MAX_ATTEMPTS = 60  # drafts tried per (domain, pattern) before giving up on more variants
SPLITS = ("train", "test")


def _gold_has_effect(conn: sqlite3.Connection, context: str, sql: str) -> bool:
    """True when a SELECT returns a non-empty, non-NULL result or a DML changes rows."""
    is_select = sql.lstrip().upper().startswith(("SELECT", "WITH"))
    if is_select:
        rows = conn.execute(sql).fetchall()
        return any(any(v is not None for v in row) for row in rows)
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(context)
        return scratch.execute(sql).rowcount > 0
    finally:
        scratch.close()


def _drafts(
    domain: Domain,
    rows: dict[str, list[dict[str, Any]]],
    context: str,
    conn: sqlite3.Connection,
    pattern: Pattern,
    wanted: int,
    seed: int,
) -> list[Draft]:
    rng = random.Random(f"{seed}:{domain.name}:{pattern.name}")
    drafting = Drafting(domain, rows, rng)
    found: dict[tuple[str, str], Draft] = {}
    for _ in range(MAX_ATTEMPTS):
        if len(found) >= wanted:
            break
        draft = pattern.make(drafting)
        if draft is None or (draft.question, draft.sql) in found:
            continue
        try:
            useful = _gold_has_effect(conn, context, draft.sql)
        except sqlite3.Error as exc:  # a generator bug: fail loudly
            raise RuntimeError(
                f"{domain.name}/{pattern.name}: gold fails: {exc}\n{draft.sql}"
            ) from exc
        if useful:
            found[(draft.question, draft.sql)] = draft
    if not found:
        raise RuntimeError(f"{domain.name}/{pattern.name}: no draft with a non-empty result")
    return list(found.values())


def _record(
    domain: Domain, pattern: Pattern, context: str, draft: Draft, split: str
) -> dict[str, Any]:
    return {
        "id": "",
        "domain": domain.name,
        "sql_complexity": pattern.tier,
        "sql_task_type": pattern.task,
        "sql_prompt": draft.question,
        "sql_context": context,
        "sql": draft.sql,
        "sql_explanation": draft.explanation,
        "pattern": pattern.name,
        "split": split,
    }


def generate(seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """Build both splits in memory (records in gretel format, ids assigned, shuffled)."""
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for domain in DOMAINS:
        rows = domain_rows(domain, random.Random(f"{seed}:{domain.name}:rows"))
        context = context_script(domain, rows)
        conn = sqlite3.connect(":memory:")
        try:
            conn.executescript(context)
            plan: list[tuple[str, Pattern, int]] = []
            if domain.held_out:
                plan += [("test", p, TEST_VARIANTS) for p in TRAIN_PATTERNS + HELD_OUT_PATTERNS]
            else:
                plan += [("train", p, TRAIN_VARIANTS) for p in TRAIN_PATTERNS]
                plan += [("test", p, TEST_VARIANTS) for p in HELD_OUT_PATTERNS]
            for split, pattern, wanted in plan:
                for draft in _drafts(domain, rows, context, conn, pattern, wanted, seed):
                    splits[split].append(_record(domain, pattern, context, draft, split))
        finally:
            conn.close()
    train_keys = {(r["sql_prompt"], r["sql"]) for r in splits["train"]}
    overlap = [r for r in splits["test"] if (r["sql_prompt"], r["sql"]) in train_keys]
    if overlap:
        raise RuntimeError(f"{len(overlap)} test example(s) also in train")
    for name, records in splits.items():
        random.Random(f"{seed}:shuffle:{name}").shuffle(records)
        for i, record in enumerate(records):
            record["id"] = f"bundled:{name}:{i:05d}"
    return splits


def _jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def build_manifest(
    seed: int, splits: dict[str, list[dict[str, Any]]], files: dict[str, bytes]
) -> dict[str, Any]:
    """Sizes, label counts, held-out domains / patterns and file hashes."""
    manifest: dict[str, Any] = {
        "name": "sqlgrpo-bundled",
        "format": "gretel jsonl (sql_prompt, sql_context, sql, domain, sql_complexity, "
        "sql_task_type, sql_explanation, id, pattern, split)",
        "seed": seed,
        "domains": [d.name for d in DOMAINS],
        "held_out_domains": [d.name for d in DOMAINS if d.held_out],
        "train_patterns": [p.name for p in TRAIN_PATTERNS],
        "held_out_patterns": [p.name for p in HELD_OUT_PATTERNS],
        "splits": {},
    }
    for name, records in splits.items():
        manifest["splits"][name] = {
            "file": f"{name}.jsonl",
            "rows": len(records),
            "sha256": hashlib.sha256(files[name]).hexdigest(),
            "by_domain": dict(sorted(Counter(r["domain"] for r in records).items())),
            "by_sql_complexity": dict(
                sorted(Counter(r["sql_complexity"] for r in records).items())
            ),
            "by_sql_task_type": dict(sorted(Counter(r["sql_task_type"] for r in records).items())),
            "by_pattern": dict(sorted(Counter(r["pattern"] for r in records).items())),
        }
    return manifest


def write_bundled(out_dir: str | Path = BUNDLED_DIR, seed: int = SEED) -> dict[str, Any]:
    """Generate and write ``train.jsonl``, ``test.jsonl`` and ``manifest.json``; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = generate(seed)
    files = {name: _jsonl_bytes(records) for name, records in splits.items()}
    manifest = build_manifest(seed, splits, files)
    for name, data in files.items():
        (out / f"{name}.jsonl").write_bytes(data)
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    logger.info("wrote bundled dataset to %s: %s", out, {n: len(r) for n, r in splits.items()})
    return manifest
