"""Execution reward (SPEC 2.4) over the sandbox: fixture cases, batches, hostile SQL, logging."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from sqlgrpo.rewards import ExecutionReward, execute_query_reward_func
from sqlgrpo.sql.errors import ERROR_CREDIT, ErrorClass
from sqlgrpo.sql.sandbox import SandboxLimits
from sqlgrpo.sql.statements import split_statements

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rewards_execution.json").read_text())
CONTEXTS = FIXTURE["contexts"]


def _completion(case: dict) -> str:
    if "completion" in case:
        return case["completion"]
    return f"<reasoning>\nlook at the tables\n</reasoning>\n<sql>\n{case['pred']}\n</sql>"


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_execution_reward(case: dict) -> None:
    reward = ExecutionReward(**case.get("options", {}))
    extras: dict[str, list] = {}
    got = reward(
        ["p"],
        [_completion(case)],
        sql=[case["gold"]],
        sql_context=[CONTEXTS[case["context"]]],
        log_extra=lambda column, values: extras.setdefault(column, []).extend(values),
    )
    if "error_class" in case:
        expected = ERROR_CREDIT[ErrorClass(case["error_class"])] * 1.2
        assert extras["execute_query_reward_func/error_class"] == [case["error_class"]]
    else:
        expected = case["expected"]
    assert got == [pytest.approx(expected, abs=1e-9)]
    assert extras["execute_query_reward_func/match_kind"] == [case["kind"]]


def test_whole_fixture_as_one_trl_batch_matches_case_by_case() -> None:
    cases = [c for c in FIXTURE["cases"] if not c.get("options")]
    got = execute_query_reward_func(
        [f"prompt {i}" for i in range(len(cases))],
        [_completion(c) for c in cases],
        sql=[c["gold"] for c in cases],
        sql_context=[CONTEXTS[c["context"]] for c in cases],
        db_path=[None] * len(cases),
        trainer_state=object(),
        completion_ids=[[1, 2]] * len(cases),
        domain=["x"] * len(cases),
    )
    expected = [
        ERROR_CREDIT[ErrorClass(c["error_class"])] * 1.2 if "error_class" in c else c["expected"]
        for c in cases
    ]
    assert got == [pytest.approx(e, abs=1e-9) for e in expected]


def test_destructive_completions_do_not_leak_into_the_rest_of_the_batch() -> None:
    gold = "SELECT name FROM wind_farms WHERE country = 'USA'"
    dml_gold = "UPDATE wind_farms SET capacity = 300 WHERE name = 'W3'"
    preds = [
        "DELETE FROM wind_farms",
        "DROP TABLE wind_farms",
        gold,
        "UPDATE wind_farms SET capacity = 300 WHERE name = 'W3'",
        gold,
    ]
    golds = [dml_gold, gold, gold, dml_gold, gold]
    got = ExecutionReward(state_match=True)(
        None,
        [f"<reasoning>r</reasoning><sql>{p}</sql>" for p in preds],
        sql=golds,
        sql_context=[CONTEXTS["wind"]] * len(preds),
    )
    assert got[2] == pytest.approx(1.2)  # after a DELETE and a DROP in the same batch
    assert got[3] == pytest.approx(1.2)  # a DML gold in the batch, matched by state
    assert got[4] == pytest.approx(1.2)


@pytest.mark.timeout(60)
def test_hostile_sql_returns_quickly_and_touches_no_files(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        hostile = [
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT COUNT(*) FROM c",
            "SELECT COUNT(*) FROM wind_farms a, wind_farms b, wind_farms c, wind_farms d, "
            "wind_farms e, wind_farms f, wind_farms g, wind_farms h, wind_farms i, wind_farms j, "
            "wind_farms k, wind_farms l, wind_farms m, wind_farms n, wind_farms o, wind_farms p",
            "SELECT zeroblob(2000000000)",
            "ATTACH DATABASE 'evil.db' AS evil",
            "VACUUM INTO 'copy.db'",
            "SELECT load_extension('x')",
            "PRAGMA writable_schema = 1",
            "SELECT '\x00' || name FROM wind_farms",
            "SELECT '\ud800'",
            "SELECT " + "(" * 5000 + "1" + ")" * 5000,
            "SELECT " + "1 + " * 300_000 + "1",
        ]
        reward = ExecutionReward(limits=SandboxLimits(timeout_s=0.5))
        got = reward(
            None,
            [f"<reasoning>r</reasoning><sql>{h}</sql>" for h in hostile],
            sql=["SELECT name FROM wind_farms"] * len(hostile),
            sql_context=[CONTEXTS["wind"]] * len(hostile),
        )
    finally:
        os.chdir(cwd)
    assert len(got) == len(hostile)
    assert all(0.0 <= g <= 0.5 * 1.2 for g in got)
    assert list(tmp_path.iterdir()) == []


def test_log_extra_and_log_metric_shapes() -> None:
    extras: dict[str, list] = {}
    metrics: dict[str, float] = {}
    completions = [
        "<reasoning>r</reasoning><sql>SELECT name FROM wind_farms</sql>",
        "<reasoning>r</reasoning><sql>SELECT nope FROM wind_farms</sql>",
        "no sql",
    ]
    execute_query_reward_func(
        None,
        completions,
        sql=["SELECT name FROM wind_farms"] * 3,
        sql_context=[CONTEXTS["wind"]] * 3,
        log_extra=lambda c, v: extras.setdefault(c, []).extend(v),
        log_metric=lambda n, v: metrics.__setitem__(n, v),
    )
    prefix = "execute_query_reward_func/"
    assert extras[prefix + "statement_type"] == ["SELECT", "SELECT", ""]
    assert extras[prefix + "error_class"] == ["", "missing_column", ""]
    assert extras[prefix + "match_kind"] == ["exact", "error", "no_sql"]
    assert metrics[prefix + "exact_rate"] == pytest.approx(1 / 3)
    assert metrics[prefix + "error_rate"] == pytest.approx(1 / 3)
    assert metrics[prefix + "no_sql_rate"] == pytest.approx(1 / 3)


def test_gold_runs_once_per_sample_across_a_group() -> None:
    reward = ExecutionReward()
    gold = "SELECT name FROM wind_farms"
    completions = [f"<reasoning>r</reasoning><sql>{gold}</sql>"] * 8
    reward(None, completions, sql=[gold] * 8, sql_context=[CONTEXTS["wind"]] * 8)
    reward(None, completions, sql=[gold] * 8, sql_context=[CONTEXTS["wind"]] * 8)
    assert len(reward.checker._gold) == 1


def test_pickling_drops_the_checker_and_keeps_options() -> None:
    reward = ExecutionReward(weight=2.0, prefill="<reasoning>", rule="bird", state_match=True,
                             limits=SandboxLimits(timeout_s=1.0), name="exec_bird")  # fmt: skip
    reward(
        None, ["x</reasoning><sql>SELECT 1</sql>"], sql=["SELECT 1"], sql_context=[CONTEXTS["ten"]]
    )
    assert reward._checker is not None
    copy = pickle.loads(pickle.dumps(reward))
    assert copy._checker is None
    assert (copy.weight, copy.prefill, copy.rule, copy.state_match, copy.__name__) == (
        2.0, "<reasoning>", "bird", True, "exec_bird",
    )  # fmt: skip
    assert copy.limits == SandboxLimits(timeout_s=1.0)
    got = copy(
        None, ["x</reasoning><sql>SELECT 1</sql>"], sql=["SELECT 1"], sql_context=[CONTEXTS["ten"]]
    )
    assert got == [2.0]


def test_bad_options_and_missing_gold_column_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown comparison rule 'exact'"):
        ExecutionReward(rule="exact")
    with pytest.raises(ValueError, match="needs the gold SQL column 'sql'"):
        execute_query_reward_func(None, ["x"], sql_context=["CREATE TABLE t (a)"])


def test_spider_database_row(spider_subset_path: Path) -> None:
    train = json.loads((spider_subset_path / "train.json").read_text())
    row = train[0]
    db_path = spider_subset_path / "database" / row["db_id"] / f"{row['db_id']}.sqlite"
    got = execute_query_reward_func(
        None,
        [
            f"<reasoning>r</reasoning><sql>{row['query']}</sql>",
            "<reasoning>r</reasoning><sql>SELECT x_y_z</sql>",
        ],
        sql=[row["query"]] * 2,
        db_path=[str(db_path)] * 2,
        sql_context=[None, None],
    )
    assert got[0] == pytest.approx(1.2)
    assert got[1] == pytest.approx(ERROR_CREDIT[ErrorClass.MISSING_COLUMN] * 1.2)


def test_identical_predictions_in_a_group_run_once() -> None:
    reward = ExecutionReward()
    calls: list[str] = []
    real_check = reward.checker.check

    def counting_check(pred_sql, gold_sql, **kwargs):
        calls.append(pred_sql)
        return real_check(pred_sql, gold_sql, **kwargs)

    reward.checker.check = counting_check
    gold = "SELECT name FROM wind_farms"
    same = [f"<reasoning>take {i}</reasoning><sql>{gold}</sql>" for i in range(6)]
    other = ["<reasoning>r</reasoning><sql>SELECT nme FROM wind_farms</sql>"] * 2
    got = reward(None, same + other, sql=[gold] * 8, sql_context=[CONTEXTS["wind"]] * 8)
    assert got[:6] == [pytest.approx(1.2)] * 6
    assert got[6] == got[7] == pytest.approx(ERROR_CREDIT[ErrorClass.MISSING_COLUMN] * 1.2)
    assert sorted(calls) == sorted([gold, "SELECT nme FROM wind_farms"])


def test_every_gretel_gold_scores_full_credit_against_itself(gretel_train_path: Path) -> None:
    rows = [json.loads(line) for line in gretel_train_path.read_text().splitlines() if line.strip()]
    extras: dict[str, list] = {}
    got = ExecutionReward(state_match=True)(
        None,
        [f"<reasoning>r</reasoning><sql>{r['sql']}</sql>" for r in rows],
        sql=[r["sql"] for r in rows],
        sql_context=[r["sql_context"] for r in rows],
        log_extra=lambda c, v: extras.setdefault(c, []).extend(v),
    )
    kinds = extras["execute_query_reward_func/match_kind"]
    errors = extras["execute_query_reward_func/error_class"]
    for row, reward, kind, error in zip(rows, got, kinds, errors, strict=True):
        if len(split_statements(row["sql"])) > 1:
            # a gold may stack statements; a prediction may not (one statement per completion)
            assert reward == 0.0
            assert kind == "gold_error" or (kind, error) == ("error", "multiple_statements")
            continue
        assert kind in ("exact", "state_match", "gold_error")
        assert reward == pytest.approx(0.0 if kind == "gold_error" else 1.2)
    counts = {k: kinds.count(k) for k in set(kinds)}
    print(f"gretel golds vs themselves ({len(rows)} rows): {counts}")
    assert counts.get("gold_error", 0) < len(rows) * 0.05


def test_every_spider_gold_scores_full_credit_against_itself(spider_subset_path: Path) -> None:
    train = json.loads((spider_subset_path / "train.json").read_text())
    paths = [
        str(spider_subset_path / "database" / r["db_id"] / f"{r['db_id']}.sqlite") for r in train
    ]
    extras: dict[str, list] = {}
    got = execute_query_reward_func(
        None,
        [f"<reasoning>r</reasoning><sql>{r['query']}</sql>" for r in train],
        sql=[r["query"] for r in train],
        db_path=paths,
        log_extra=lambda c, v: extras.setdefault(c, []).extend(v),
    )
    kinds = extras["execute_query_reward_func/match_kind"]
    counts = {k: kinds.count(k) for k in set(kinds)}
    print(f"spider golds vs themselves ({len(train)} rows): {counts}")
    assert all(
        r == pytest.approx(1.2) for r, k in zip(got, kinds, strict=True) if k != "gold_error"
    )
    assert counts.get("gold_error", 0) < len(train) * 0.05
