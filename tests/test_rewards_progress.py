"""The ``progress`` reward profile: hand-worked fixture cases, the three measured hacks ranked
below honest partial answers, and the same ranking on real gretel rows."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from sqlgrpo.rewards import ComplexityReward, ExecutionReward, ReasoningReward, build_profile
from sqlgrpo.rewards.execution import progress_score
from sqlgrpo.rewards.monitors import hack_flags

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rewards_progress.json").read_text())
CASES = FIXTURE["cases"]
DML_CASES = FIXTURE["dml"]["cases"]
NAMES = [
    "strict_format_reward_func",
    "execute_query_reward_func",
    "reasoning_quality_reward",
    "complexity_reward",
]


def _completion(case: dict) -> str:
    if "completion" in case:
        return case["completion"]
    body = f"<reasoning>\n{FIXTURE['reasoning']}\n</reasoning>\n<sql>\n{case['sql']}\n</sql>"
    return body + case.get("after", "")


def _score(profile: str, cases: list[dict], gold: str) -> list[dict[str, float]]:
    """Every reward of ``profile`` per case, all cases scored as one TRL batch."""
    completions = [_completion(c) for c in cases]
    columns = {"sql": [gold] * len(cases), "sql_context": [FIXTURE["sql_context"]] * len(cases)}
    funcs = build_profile(profile)
    scores = {f.__name__: f(["q"] * len(cases), completions, **columns) for f in funcs}
    return [{name: values[i] for name, values in scores.items()} for i in range(len(cases))]


@pytest.fixture(scope="module")
def progress() -> list[dict[str, float]]:
    return _score("progress", CASES, FIXTURE["gold"])


@pytest.fixture(scope="module")
def ungated() -> list[dict[str, float]]:
    """The ungated reasoning and complexity rewards of each case (what ``spec`` pays)."""
    completions = [_completion(c) for c in CASES]
    columns = {
        "sql": [FIXTURE["gold"]] * len(CASES),
        "sql_context": [FIXTURE["sql_context"]] * len(CASES),
    }
    reasoning = ReasoningReward()(None, completions, **columns)
    complexity = ComplexityReward()(None, completions, **columns)
    return [{"reasoning": r, "complexity": c} for r, c in zip(reasoning, complexity, strict=True)]


def test_profile_lists_the_progress_rewards() -> None:
    funcs = build_profile("progress", prefill="<reasoning>\n", rule="spider")
    assert [f.__name__ for f in funcs] == NAMES
    assert funcs[0].strict and funcs[1].progress and funcs[1].rule == "spider"
    assert funcs[2].gate == "progress" and funcs[3].gate == "progress"
    # one checker for every check: the SQL of a completion runs once per batch in training
    checkers = {
        id(funcs[1].checker),
        id(funcs[2].execution.checker),
        id(funcs[3].execution.checker),
    }
    assert len(checkers) == 1
    assert all(f.prefill == "<reasoning>\n" for f in funcs)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_execution_credit_by_hand(index: int, progress: list[dict[str, float]]) -> None:
    case = CASES[index]
    assert progress[index]["execute_query_reward_func"] == pytest.approx(case["execution"])
    extras: dict[str, list] = {}
    ExecutionReward(progress=True)(
        None,
        [_completion(case)],
        sql=[FIXTURE["gold"]],
        sql_context=[FIXTURE["sql_context"]],
        log_extra=lambda key, values: extras.setdefault(key, []).extend(values),
    )
    assert extras["execute_query_reward_func/match_kind"] == [case["kind"]]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_reasoning_and_complexity_scale_with_the_execution_credit(
    index: int, progress: list[dict[str, float]], ungated: list[dict[str, float]]
) -> None:
    got, full = progress[index], ungated[index]
    fraction = got["execute_query_reward_func"] / 1.2
    assert got["reasoning_quality_reward"] == pytest.approx(full["reasoning"] * fraction)
    assert got["complexity_reward"] == pytest.approx(full["complexity"] * fraction)
    if fraction == 0:  # neither pays on its own
        assert got["reasoning_quality_reward"] == 0.0 and got["complexity_reward"] == 0.0
    if "completion" not in CASES[index]:
        assert full["reasoning"] > 0.5  # the same text, paid in full by the ungated reward


def test_each_hack_scores_below_every_honest_partial_answer_and_correct_highest(
    progress: list[dict[str, float]],
) -> None:
    totals = {c["name"]: sum(progress[i].values()) for i, c in enumerate(CASES)}
    hacks = [c["name"] for c in CASES if c.get("hack")]
    honest = [c["name"] for c in CASES if c.get("honest")]
    assert {CASES[i]["hack"] for i, c in enumerate(CASES) if c.get("hack")} == {
        "run_on", "bare_select", "group_by_key",
    }  # fmt: skip
    for hack in hacks:
        for answer in honest:
            assert totals[hack] < totals[answer], (hack, answer)
    assert totals["correct"] == max(totals.values())
    correct = [totals["correct"], totals["correct, reworded and ordered"]]
    assert all(min(correct) > totals[n] for n in totals if not n.startswith("correct"))
    # honest answers rank by how much of the gold's result they return
    assert totals[honest[0]] > totals[honest[2]] > totals[honest[1]]


def test_spec_pays_the_hacks_the_progress_profile_does_not() -> None:
    """The loopholes measured under ``spec``, on the same completions: the run-on answer
    scores as much as the correct one, and the bare SELECT and wrong columns outscore an
    honest partial answer on the execution reward."""
    spec = _score("spec", CASES, FIXTURE["gold"])
    totals = {c["name"]: sum(spec[i].values()) for i, c in enumerate(CASES)}
    execution = {c["name"]: spec[i]["execute_query_reward_func"] for i, c in enumerate(CASES)}
    assert totals["hack a: correct answer, then run-on text after </sql>"] == totals["correct"]
    honest = "honest: one of the two filters (tonnage)"
    assert execution["hack b: bare SELECT of the gold's columns"] >= execution[honest]
    assert execution["rule: wrong columns earn no partial credit"] > execution[honest]
    assert execution["rule: erroring SQL (missing column) earns nothing"] > 0


@pytest.mark.parametrize("index", range(len(DML_CASES)), ids=[c["name"] for c in DML_CASES])
def test_dml_is_credited_by_state_only(index: int) -> None:
    case = DML_CASES[index]
    got = _score("progress", [case], FIXTURE["dml"]["gold"])[0]
    assert got["execute_query_reward_func"] == pytest.approx(case["execution"])
    extras: dict[str, list] = {}
    ExecutionReward(progress=True)(
        None,
        [_completion(case)],
        sql=[FIXTURE["dml"]["gold"]],
        sql_context=[FIXTURE["sql_context"]],
        log_extra=lambda key, values: extras.setdefault(key, []).extend(values),
    )
    assert extras["execute_query_reward_func/match_kind"] == [case["kind"]]


def test_hack_cases_are_what_the_monitors_count() -> None:
    for case in CASES:
        flags = hack_flags(_completion(case), FIXTURE["gold"], FIXTURE["sql_context"])
        flagged = {name for name, on in flags.__dict__.items() if on}
        assert flagged == ({case["hack"]} if case.get("hack") else set()), case["name"]


def test_progress_rewards_pickle_and_keep_their_names() -> None:
    funcs = build_profile("progress")
    columns = {"sql": [FIXTURE["gold"]], "sql_context": [FIXTURE["sql_context"]]}
    completion = [_completion(CASES[2])]
    before = [f(None, completion, **columns) for f in funcs]
    copies = [pickle.loads(pickle.dumps(f)) for f in funcs]
    assert [c.__name__ for c in copies] == NAMES
    assert [c(None, completion, **columns) for c in copies] == before


def test_strict_and_progress_credit_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="strict or progress"):
        ExecutionReward(strict=True, progress=True)


def test_progress_logs_partial_and_shortcut_rates(progress: list[dict[str, float]]) -> None:
    metrics: dict[str, float] = {}
    completions = [_completion(c) for c in CASES]
    columns = {
        "sql": [FIXTURE["gold"]] * len(CASES),
        "sql_context": [FIXTURE["sql_context"]] * len(CASES),
    }
    funcs = build_profile("progress")
    for f in funcs:
        f(None, completions, log_metric=metrics.__setitem__, **columns)
    kinds = [c["kind"] for c in CASES]
    n = len(CASES)
    assert metrics["execute_query_reward_func/partial_rate"] == kinds.count("partial") / n
    assert metrics["execute_query_reward_func/shortcut_rate"] == kinds.count("shortcut") / n
    paid = sum(c["execution"] > 0 for c in CASES) / n
    assert metrics["reasoning_quality_reward/gate_pass_rate"] == pytest.approx(paid)
    assert metrics["complexity_reward/gate_mean_factor"] == pytest.approx(
        sum(c["execution"] for c in CASES) / 1.2 / n
    )


def test_progress_score_never_pays_a_shortcut_or_a_failure() -> None:
    from sqlgrpo.sql.execution import ExecutionChecker

    checker = ExecutionChecker()
    context = FIXTURE["sql_context"]
    bare = checker.check("SELECT name, tonnage FROM vessels", FIXTURE["gold"], sql_context=context)
    assert progress_score(bare, shortcut=False) == (pytest.approx(0.25), "partial")  # 0.5 * 3/6
    assert progress_score(bare, shortcut=True) == (0.0, "shortcut")
    failed = checker.check("SELECT nope FROM vessels", FIXTURE["gold"], sql_context=context)
    assert progress_score(failed) == (0.0, "error")


# --------------------------------------------------------------------------- real gretel rows


def _real_filtering_rows(path: Path, limit: int) -> list[dict]:
    """Gretel rows whose gold is a plain filtering SELECT (a WHERE, no join, grouping,
    aggregate or LIMIT) on one table: the questions the bare-SELECT hack answered."""
    from sqlgrpo.sql.shape import query_shape

    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        shape = query_shape(row["sql"])
        if shape is None or not shape.where or shape.join or shape.grouped:
            continue
        if shape.aggregate or shape.limit or " FROM " not in row["sql"].upper():
            continue
        rows.append(row)
        if len(rows) == limit:
            break
    return rows


def _without_where(sql: str) -> str:
    import sqlglot

    tree = sqlglot.parse_one(sql, read="sqlite")
    tree.set("where", None)
    return tree.sql(dialect="sqlite")


def test_hacks_never_outscore_the_gold_on_real_gretel_rows(gretel_train_path: Path) -> None:
    """On real gretel questions, the gold answer scores highest under ``progress``, its
    run-on twin scores 0, and the bare SELECT of the gold's columns earns no execution credit
    where ``spec`` pays it at least the 0.48 of running."""
    from sqlgrpo.sql.execution import ExecutionChecker

    rows = _real_filtering_rows(gretel_train_path, 40)
    checker = ExecutionChecker()
    usable = []
    for row in rows:  # golds that run and return rows, whose bare twin returns more
        gold = checker.check(row["sql"], row["sql"], sql_context=row["sql_context"])
        bare = checker.check(_without_where(row["sql"]), row["sql"], sql_context=row["sql_context"])
        if gold.match and gold.gold.rows and bare.executed and not bare.match:
            usable.append(row)
    assert len(usable) >= 15, len(usable)
    reasoning = "First I read the table.\nThen I filter the rows.\nFinally I select the columns."
    variants = {
        "gold": lambda r: f"<sql>{r['sql']}</sql>",
        "run_on": lambda r: f"<sql>{r['sql']}</sql>\nThat answers the question.",
        "bare": lambda r: f"<sql>{_without_where(r['sql'])}</sql>",
    }
    columns = {
        "sql": [r["sql"] for r in usable],
        "sql_context": [r["sql_context"] for r in usable],
    }
    totals, execution = {}, {}
    for profile in ("progress", "spec"):
        funcs = build_profile(profile)
        for name, make in variants.items():
            completions = [f"<reasoning>\n{reasoning}\n</reasoning>\n{make(r)}" for r in usable]
            scores = [f(None, completions, **columns) for f in funcs]
            totals[profile, name] = [sum(s) for s in zip(*scores, strict=True)]
            execution[profile, name] = scores[1]
    for i in range(len(usable)):
        assert totals["progress", "gold"][i] > totals["progress", "bare"][i]
        assert totals["progress", "bare"][i] > totals["progress", "run_on"][i] == 0.0
        assert execution["progress", "bare"][i] == 0.0
        assert execution["spec", "bare"][i] >= 0.48 - 1e-9
