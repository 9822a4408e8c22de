"""``SqlGrpoTrainer._calculate_rewards``: rewards of one batch share each SQL check."""

from __future__ import annotations

from collections import defaultdict

import pytest

from sqlgrpo.rewards import build_profile
from sqlgrpo.sql.execution import ExecutionChecker

CONTEXT = "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);"
GOLD = "SELECT COUNT(*) FROM t;"
COMPLETIONS = [
    f"<reasoning>\nCount the rows of t.\n</reasoning>\n<sql>\n{sql}\n</sql>"
    for sql in ("SELECT COUNT(*) FROM t;", "SELECT a FROM t;", "SELECT nope FROM t;")
]


def _trainer(reward_funcs: list, monkeypatch: pytest.MonkeyPatch):
    """A SqlGrpoTrainer shell whose parent reward computation calls each reward once,
    the way TRL's does (completions plus the dataset columns as keyword lists)."""
    from trl import GRPOTrainer

    from sqlgrpo.training.trainer import SqlGrpoTrainer

    def parent(self, inputs, prompts, completions, completion_ids_list):
        columns = {key: [row[key] for row in inputs] for key in inputs[0] if key != "prompt"}
        return [
            func(completions=completions, prompts=prompts, **columns) for func in self.reward_funcs
        ]

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", parent)
    trainer = SqlGrpoTrainer.__new__(SqlGrpoTrainer)
    trainer.reward_funcs = reward_funcs
    trainer.prefill = ""
    trainer._pending_metrics = defaultdict(list)  # where TRL's log_metric keeps the monitors
    return trainer


@pytest.mark.parametrize(
    ("profile", "checks"), [("spec_gated", 2), ("strict_gated", 2), ("progress", 3)]
)
def test_gated_reasoning_reuses_the_execution_check(profile: str, checks: int, monkeypatch) -> None:
    funcs = build_profile(profile)
    calls: list[str] = []
    check_one = ExecutionChecker._check_one

    def counting(self, pred_sql, *args, **kwargs):
        calls.append(pred_sql)
        return check_one(self, pred_sql, *args, **kwargs)

    monkeypatch.setattr(ExecutionChecker, "_check_one", counting)
    inputs = [{"prompt": "q", "sql_context": CONTEXT, "sql": GOLD}] * len(COMPLETIONS)
    trainer = _trainer(funcs, monkeypatch)
    shared = trainer._calculate_rewards(inputs, ["q"] * 3, COMPLETIONS, [[1]] * 3)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 3  # each SQL ran once

    calls.clear()  # outside the trainer's block, the gate runs each prediction again
    alone = [
        func(
            prompts=["q"] * 3,
            completions=COMPLETIONS,
            **{k: [r[k] for r in inputs] for k in ("sql_context", "sql")},
        )
        for func in funcs
    ]
    assert len(calls) == 3 * checks  # the execution reward's and each gate's
    assert shared == alone  # the same scores either way
    assert funcs[1].checker._outcomes is None  # the memo does not outlive the batch


def test_execution_checks_find_gated_and_plain_checks() -> None:
    from sqlgrpo.rewards.registry import execution_checks

    spec = build_profile("spec")  # the reasoning reward has no gate: one check in all
    assert execution_checks(spec) == [spec[1]]
    gated = build_profile("spec_gated")
    assert execution_checks(gated) == [gated[1], gated[2].execution]
    assert execution_checks([lambda completions, **kw: [0.0] * len(completions)]) == []
