"""Hack monitors: flags decided by hand per completion, batch shares, the trainer's per-step
metrics, an evaluation's metrics and report, the training plot, and real gretel rows."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from sqlgrpo.evaluation.metrics import aggregate, hack_monitor_shares
from sqlgrpo.rewards.monitors import MONITORS, HackFlags, hack_flags, hack_monitors
from sqlgrpo.sql.parsing import primary_key_columns, primary_key_columns_from_db, primary_keys_of
from sqlgrpo.sql.shape import find_shortcuts, query_shape

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = json.loads((FIXTURES / "monitors_cases.json").read_text())
CONTEXTS = FIXTURE["contexts"]
CASES = FIXTURE["cases"]


def _completion(case: dict) -> str:
    if "completion" in case:
        return case["completion"]
    return f"<reasoning>r</reasoning><sql>{case['sql']}</sql>" + case.get("after", "")


def _flagged(flags: HackFlags) -> set[str]:
    return {name for name in MONITORS if getattr(flags, name)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_flags_by_hand(case: dict) -> None:
    flags = hack_flags(_completion(case), case["gold"], CONTEXTS[case["context"]])
    assert _flagged(flags) == set(case["flags"])


def test_batch_shares_as_trl_hands_them() -> None:
    """Chat-message completions with the prefill cut off, as TRL passes them."""
    completions = [
        [{"role": "assistant", "content": _completion(c).removeprefix("<reasoning>")}]
        for c in CASES
    ]
    columns = {
        "sql": [c["gold"] for c in CASES],
        "sql_context": [CONTEXTS[c["context"]] for c in CASES],
        "db_path": [None] * len(CASES),
    }
    shares = hack_monitors(completions, columns, prefill="<reasoning>")
    assert list(shares) == list(MONITORS)
    for name in MONITORS:
        assert shares[name] == sum(name in c["flags"] for c in CASES) / len(CASES)
    assert hack_monitors([], {}) == {}
    # without a gold column only the run-on monitor can fire
    no_gold = hack_monitors([_completion(c) for c in CASES], {})
    assert no_gold["bare_select"] == no_gold["group_by_key"] == 0.0
    assert no_gold["run_on"] == shares["run_on"]


def test_primary_keys_inline_constraint_and_garbage() -> None:
    assert primary_key_columns(CONTEXTS["keyed"]) == {"client_no", "order_no"}
    context = (
        'CREATE TABLE "T" ("Code" TEXT NOT NULL PRIMARY KEY, v INT); '
        "CREATE TABLE u (a INT, b INT, CONSTRAINT pk_u PRIMARY KEY (a, b)); "
        "CREATE VIEW w AS SELECT 1 AS id; INSERT INTO u VALUES (1, 2);"
    )
    assert primary_key_columns(context) == {"code", "a", "b"}
    assert primary_key_columns("") == frozenset()
    assert primary_key_columns("CREATE TABLE t (a INT PRIMARY") == frozenset()


def test_primary_keys_from_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE item (sku TEXT PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE line (a INT, b INT, PRIMARY KEY (a, b))")
    conn.close()
    assert primary_key_columns_from_db(str(path)) == {"sku", "a", "b"}
    assert primary_keys_of(None, str(path)) == {"sku", "a", "b"}
    assert primary_keys_of(None, str(tmp_path / "missing.sqlite")) == frozenset()
    # a Spider-style row: the key comes from the file
    flags = hack_flags(
        "<reasoning>r</reasoning><sql>SELECT name FROM item GROUP BY sku</sql>",
        "SELECT name FROM item WHERE name = 'x'",
        None,
        str(path),
    )
    assert flags == HackFlags(group_by_key=True)


def test_hostile_sql_never_raises() -> None:
    gold = "SELECT name FROM ships WHERE flag = 'Panama'"
    # too deep for sqlglot / too long to parse: the lexical scan still reads the shape
    assert find_shortcuts("(" * 5000 + "SELECT 1", gold).bare_select
    assert find_shortcuts("SELECT " + "a," * 30_000 + "a FROM t", gold).bare_select
    assert not find_shortcuts("SELECT " + "a," * 30_000 + "a FROM t WHERE b", gold).any
    for sql in ("\x00;", "", ";;;", "UPDATE ((((("):
        assert not find_shortcuts(sql, gold).any
    assert query_shape("SELECT name FROM t WHERE " + "a = 1 AND " * 3000 + "b = 2").where


def test_trainer_logs_the_monitors_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import GRPOTrainer

    from sqlgrpo.rewards import build_profile
    from sqlgrpo.training.trainer import SqlGrpoTrainer

    def parent(self, inputs, prompts, completions, completion_ids_list):
        columns = {key: [row[key] for row in inputs] for key in inputs[0] if key != "prompt"}
        return [f(completions=completions, prompts=prompts, **columns) for f in self.reward_funcs]

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", parent)
    trainer = SqlGrpoTrainer.__new__(SqlGrpoTrainer)
    trainer.reward_funcs = build_profile("progress", prefill="<reasoning>")
    trainer.prefill = "<reasoning>"
    trainer._pending_metrics = defaultdict(list)
    inputs = [
        {"prompt": "q", "sql": c["gold"], "sql_context": CONTEXTS[c["context"]], "db_path": None}
        for c in CASES
    ]
    completions = [_completion(c).removeprefix("<reasoning>") for c in CASES]
    rewards = trainer._calculate_rewards(inputs, ["q"] * len(CASES), completions, [[1]] * 24)
    assert len(rewards) == 4
    for name in MONITORS:
        expected = sum(name in c["flags"] for c in CASES) / len(CASES)
        assert trainer._pending_metrics[f"monitors/{name}"] == [expected]


def test_evaluation_metrics_and_report_carry_the_monitors(tmp_path: Path) -> None:
    from sqlgrpo.evaluation.report import ReportConfig, build_report

    records = [
        {
            "id": str(i),
            "raw_output": _completion(c),
            "gold_sql": c["gold"],
            "sql_context": CONTEXTS[c["context"]],
            "db_path": None,
            "match": False,
        }
        for i, c in enumerate(CASES)
    ]
    metrics = aggregate(records)
    for name in MONITORS:
        assert metrics["monitors"][name] == sum(name in c["flags"] for c in CASES) / len(CASES)
    assert hack_monitor_shares([]) == {}
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics | {"compare_rule": "seed"}))
    page = build_report(ReportConfig(run_dir=str(run))).html.read_text()
    share = metrics["monitors"]["bare_select"]
    assert f"<td>hack monitor: bare_select (share)</td><td>{share:.3f}</td>" in page


def test_training_plot_draws_the_monitors(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from sqlgrpo.evaluation.reward_curves import MONITOR_NAMES, training_curves
    from sqlgrpo.training.callbacks import plot_reward_curves

    records = [
        {"step": s, "reward": 1.0, "rewards/fmt/mean": 1.0, "monitors/run_on": 0.1 * s}
        | {"monitors/bare_select": 0.0, "monitors/group_by_key": 0.5}
        for s in (1, 2, 3)
    ]
    series = training_curves(records)
    assert series[MONITOR_NAMES["monitors/run_on"]] == (
        [1, 2, 3],
        [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)],
    )
    assert {MONITOR_NAMES[f"monitors/{m}"] for m in MONITORS} <= set(series)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    plain = [{k: v for k, v in r.items() if not k.startswith("monitors/")} for r in records]
    (tmp_path / "b" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain))
    with_monitors = plot_reward_curves(tmp_path / "a" / "metrics.jsonl", tmp_path / "a.png")
    without = plot_reward_curves(tmp_path / "b" / "metrics.jsonl", tmp_path / "b.png")
    assert imread(with_monitors).shape[0] > imread(without).shape[0]  # a second row of panels


# --------------------------------------------------------------------------- real gretel rows


def test_real_gretel_golds_take_no_shortcut_and_their_hacks_are_seen(
    gretel_train_path: Path,
) -> None:
    """Every real gretel gold, answered by itself, raises no monitor; stripped of its clauses
    it is a bare SELECT wherever it had one; padded with GROUP BY id it is key padding."""
    import sqlglot

    rows = [json.loads(line) for line in gretel_train_path.read_text().splitlines()]
    golds = [r for r in rows if query_shape(r["sql"]) is not None]
    assert len(golds) > 700
    for row in golds:
        flags = hack_flags(f"<reasoning>r</reasoning><sql>{row['sql']}</sql>", row["sql"],
                           row["sql_context"])  # fmt: skip
        assert flags == HackFlags(), row["sql"]
    bare_checked = padded_checked = 0
    for row in golds:
        shape = query_shape(row["sql"])
        try:
            tree = sqlglot.parse_one(row["sql"], read="sqlite")
        except sqlglot.errors.ParseError:  # read by the lexical fallback instead
            continue
        if not isinstance(tree, sqlglot.exp.Select) or tree.args.get("from_") is None:
            continue
        table = tree.args["from_"].this
        if not isinstance(table, sqlglot.exp.Table):
            continue
        bare = f"SELECT * FROM {table.sql(dialect='sqlite')}"
        flags = hack_flags(f"<sql>{bare}</sql>", row["sql"], row["sql_context"])
        assert flags.bare_select == shape.narrows, row["sql"]
        bare_checked += shape.narrows
        if not shape.grouped:
            padded = f"{bare} GROUP BY id"
            assert hack_flags(f"<sql>{padded}</sql>", row["sql"], row["sql_context"]).group_by_key
            padded_checked += 1
    assert bare_checked > 700 and padded_checked > 400  # most of the ~790 SELECT golds


def test_real_base_model_outputs(gretel_train_path: Path) -> None:
    """Greedy outputs of the embedded base model (SmolLM2-135M, one-shot, prefill, 160 tokens)
    on 12 seeded gretel rows, labelled by reading them: `sqlgrpo eval --model smollm2-135m
    --data ../shared/datasets/gretel/train.jsonl --limit 12 --seed 7 --max-new-tokens 160
    --one-shot --prefill '<reasoning>\\n'`. The fixture holds the outputs and the row ids; the
    gold SQL and schema come from the shared file. One output is a bare SELECT of a table the
    gold filters and sums; none closes its answer and runs on (the one that opens a <sql>
    block is cut at the token cap)."""
    from sqlgrpo.data import load_samples

    samples = {s.id: s for s in load_samples(str(gretel_train_path)).samples}
    records = [
        json.loads(line)
        for line in (FIXTURES / "monitors_real_base.jsonl").read_text().splitlines()
    ]
    assert len(records) == 12
    for record in records:
        sample = samples[record["id"]]
        flags = hack_flags(record["raw_output"], sample.sql, sample.sql_context)
        assert _flagged(flags) == set(record["flags"]), record["id"]
        record |= {"gold_sql": sample.sql, "sql_context": sample.sql_context}
    shares = hack_monitor_shares(records)
    assert shares == {m: sum(m in r["flags"] for r in records) / 12 for m in MONITORS}
    assert shares["bare_select"] == 1 / 12
