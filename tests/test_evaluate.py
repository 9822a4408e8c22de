"""Evaluation: aggregation on fixture predictions, scripted outputs scored by real execution,
resuming, paired comparison, and an end-to-end run of a tiny random Llama through the CLI."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from eval_tiny_model import tiny_model_dir
from sqlgrpo.cli import main
from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate, select_samples
from sqlgrpo.evaluation.metrics import aggregate, compare_runs, mcnemar_exact_p
from sqlgrpo.generation import GenerationConfig

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "eval_samples.jsonl"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


class ScriptedModel:
    """Stands in for a model: answers each prompt with the scripted output for its question."""

    name = "scripted"

    def __init__(self, outputs: dict[str, str], batch_size: int = 3) -> None:
        questions = {
            json.loads(line)["sql_prompt"]: json.loads(line)["id"] for line in SAMPLES.open()
        }
        self.by_question = {q: outputs[i] for q, i in questions.items()}
        self.batch_size = batch_size
        self.seen: list[str] = []

    def _answer(self, prompt: str) -> str:
        hits = [q for q in self.by_question if q in prompt]
        assert len(hits) == 1, "each prompt holds exactly one known question"
        self.seen.append(hits[0])
        return self.by_question[hits[0]]

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        for start in range(0, len(prompts), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(prompts))))
            yield idx, [[self._answer(prompts[i])] for i in idx]


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[dict, Path]:
    spec = json.loads((FIXTURES / "eval_scripted.json").read_text())
    attach = tmp_path / "attached.db"
    for out in spec["outputs"].values():
        out["completion"] = out["completion"].replace("{attach_path}", str(attach))
    return spec, attach


def test_aggregate_matches_hand_computed_fixture() -> None:
    expected = json.loads((FIXTURES / "eval_expected_metrics.json").read_text())
    metrics = aggregate(_jsonl(FIXTURES / "eval_predictions.jsonl"))
    for key in (
        "n",
        "execution_accuracy",
        "execution_accuracy_lenient",
        "format_rate",
        "executable_rate",
        "execution_accuracy_excluding_empty_gold",
        "error_classes",
    ):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert metrics["rewards"] == pytest.approx(expected["rewards"])
    for group in ("by_gold_kind", "by_sql_complexity", "by_sql_task_type"):
        for name, want in expected[group].items():
            got = metrics[group][name]
            assert got["n"] == want["n"] and got["execution_accuracy"] == pytest.approx(
                want["execution_accuracy"]
            )
    assert "by_difficulty" not in metrics  # absent metadata: no empty breakdown


@pytest.mark.parametrize(
    "gained, lost, p",
    [(0, 0, 1.0), (5, 0, 0.0625), (1, 9, 0.021484375), (3, 3, 1.0), (10, 2, 0.0385742188)],
)
def test_mcnemar_exact(gained: int, lost: int, p: float) -> None:
    # reference values: two-sided exact binomial test at p = 0.5 (e.g. R's binom.test)
    assert mcnemar_exact_p(gained, lost) == pytest.approx(p, rel=1e-6)
    assert mcnemar_exact_p(lost, gained) == pytest.approx(p, rel=1e-6)


def test_compare_runs(tmp_path: Path) -> None:
    for name, src in (("a", "eval_predictions_baseline.jsonl"), ("b", "eval_predictions.jsonl")):
        (tmp_path / name).mkdir()
        shutil.copy(FIXTURES / src, tmp_path / name / "predictions.jsonl")
    cmp = compare_runs(tmp_path / "a", tmp_path / "b")
    assert (cmp.n_shared, cmp.gained, cmp.lost, cmp.both_correct, cmp.both_wrong) == (6, 2, 1, 2, 1)
    assert cmp.gained_ids == ["p1", "p2"] and cmp.lost_ids == ["p3"]
    assert cmp.accuracy_a == pytest.approx(0.5) and cmp.accuracy_b == pytest.approx(4 / 6)
    assert cmp.p_value == pytest.approx(1.0)


def test_select_samples_seeded_and_stable() -> None:
    items = list(range(200))
    a = select_samples(items, 50, seed=1)
    assert a == select_samples(items, 50, seed=1) and a == sorted(a) and len(set(a)) == 50
    assert a != select_samples(items, 50, seed=2)
    assert select_samples(items, 5, seed=None) == [0, 1, 2, 3, 4]


def test_scripted_outputs_scored_by_execution(
    tmp_path: Path, tokenizer: object, scripted: tuple
) -> None:
    spec, attach = scripted
    gen = ScriptedModel({i: o["completion"] for i, o in spec["outputs"].items()})
    cfg = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        generation=GenerationConfig(show_progress=False),
    )
    result = evaluate(cfg, tokenizer=tokenizer, generator=gen)
    records = {r["id"]: r for r in _jsonl(tmp_path / "ev" / "predictions.jsonl")}
    assert set(records) == set(spec["outputs"])
    for rid, out in spec["outputs"].items():
        for key, want in out["expect"].items():
            assert records[rid][key] == want, (rid, key)
        r = records[rid]
        assert r["raw_output"] == out["completion"] and r["gold_sql"] and "Question:" in r["prompt"]
        assert set(r["rewards"]) >= {"soft_format_reward_func", "execute_query_reward_func"}
        assert r["metadata"]["sql_task_type"]
    assert records["s3"]["sql"] is None and records["s3"]["sql_lenient"].startswith(
        "SELECT country"
    )
    assert records["s2"]["reasoning"] == "Count rows in wind_farms for Spain."
    assert not attach.exists(), "model SQL must not create files"
    assert records["s7"]["error_class"] is not None
    m = result.metrics
    want = spec["metrics"]
    for key in (
        "n",
        "execution_accuracy",
        "execution_accuracy_lenient",
        "execution_accuracy_excluding_empty_gold",
        "format_rate",
        "executable_rate",
    ):
        assert m[key] == pytest.approx(want[key]), key
    for group in ("by_gold_kind", "by_sql_task_type"):
        for name, (n, acc) in want[group].items():
            assert m[group][name]["n"] == n and m[group][name][
                "execution_accuracy"
            ] == pytest.approx(acc)
    assert m["compare_rule"] == "seed" and m["complete"] and m["data"] == str(SAMPLES)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["execution_accuracy"] == pytest.approx(m["execution_accuracy"])
    assert saved["settings"]["generation"]["temperature"] == 0.0


def test_resume_continues_without_redoing(
    tmp_path: Path, tokenizer: object, scripted: tuple
) -> None:
    spec, _ = scripted
    outputs = {i: o["completion"] for i, o in spec["outputs"].items()}
    cfg = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        generation=GenerationConfig(show_progress=False),
    )
    first = ScriptedModel(outputs, batch_size=2)
    partial = evaluate(cfg, tokenizer=tokenizer, generator=first, stop_after=3)
    assert partial.n_generated == 4 and not partial.metrics["complete"]  # two batches of 2
    assert len(_jsonl(tmp_path / "ev" / "predictions.jsonl")) == 4
    # a torn last line (killed mid-write) is dropped and redone
    with (tmp_path / "ev" / "predictions.jsonl").open("a") as fh:
        fh.write('{"id": "s5", "raw_out')
    second = ScriptedModel(outputs, batch_size=2)
    done = evaluate(cfg, tokenizer=tokenizer, generator=second)
    assert done.n_resumed == 4 and done.n_generated == 3
    assert len(second.seen) == 3 and not set(second.seen) & set(first.seen)
    ids = [r["id"] for r in _jsonl(tmp_path / "ev" / "predictions.jsonl")]
    assert sorted(ids) == sorted(spec["outputs"]) and len(ids) == len(set(ids))
    assert done.metrics["complete"] and done.metrics["n"] == 7
    assert done.metrics["execution_accuracy"] == pytest.approx(
        spec["metrics"]["execution_accuracy"]
    )

    other = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        compare_rule="bird",
        generation=GenerationConfig(show_progress=False),
    )
    with pytest.raises(ValueError, match="other settings.*compare_rule"):
        evaluate(other, tokenizer=tokenizer, generator=ScriptedModel(outputs))


def test_ids_file_limits_the_samples(tmp_path: Path, tokenizer: object, scripted: tuple) -> None:
    spec, _ = scripted
    ids = tmp_path / "holdout_ids.json"
    ids.write_text(json.dumps(["s3", "s1"]))
    gen = ScriptedModel({i: o["completion"] for i, o in spec["outputs"].items()})
    cfg = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        ids_file=str(ids),
        generation=GenerationConfig(show_progress=False),
    )
    result = evaluate(cfg, tokenizer=tokenizer, generator=gen)
    assert [r["id"] for r in _jsonl(tmp_path / "ev" / "predictions.jsonl")] == ["s1", "s3"]
    assert result.metrics["n"] == 2
    ids.write_text(json.dumps(["s1", "no-such-id"]))
    with pytest.raises(ValueError, match=r"holdout_ids.json: 1 of 2 id\(s\).*'no-such-id'"):
        evaluate(
            EvalConfig(model="scripted", data=str(SAMPLES), out_dir=str(tmp_path / "ev2"),
                       ids_file=str(ids), generation=GenerationConfig(show_progress=False)),
            tokenizer=tokenizer, generator=gen,
        )  # fmt: skip


def test_eval_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="compare_rule"):
        EvalConfig(model="m", data="d", compare_rule="exact")
    with pytest.raises(ValueError, match="limit"):
        EvalConfig(model="m", data="d", limit=0)


def test_cli_eval_tiny_llama(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    argv = [
        "eval",
        "--model",
        str(model_dir),
        "--data",
        str(SAMPLES),
        "--limit",
        "3",
        "--seed",
        "1",
        "--out",
        str(out),
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--prefill",
        "<reasoning>\\n",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "execution accuracy" in capsys.readouterr().out
    records = _jsonl(out / "predictions.jsonl")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and len(records) == 3
    assert sorted(r["id"] for r in records) == sorted(
        select_samples([f"s{i}" for i in range(1, 8)], 3, 1)
    )
    for r in records:
        assert r["raw_output"].startswith("<reasoning>\n")
        assert r["prompt"].endswith("<reasoning>\n")
    assert metrics["settings"]["prefill"] == "<reasoning>\n"
    assert metrics["backend"] == "hf" and metrics["timing"]["examples_generated_this_run"] == 3
    assert math.isfinite(metrics["timing"]["examples_per_second"])
    # rerun: everything resumed, nothing generated
    assert main(argv) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert (
        again["timing"]["resumed_examples"] == 3
        and again["timing"]["examples_generated_this_run"] == 0
    )


def test_cli_eval_bad_data_names_file(tmp_path: Path, model_dir: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "sql_prompt": "q", "sql": "SELECT 1"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl"):
        main(["eval", "--model", str(model_dir), "--data", str(bad), "--out", str(tmp_path / "o")])


class OracleModel:
    """Answers every prompt with its gold SQL in the SPEC format (the best possible model)."""

    name = "oracle"

    def __init__(self, gold_by_question: dict[str, str]) -> None:
        self.gold_by_question = gold_by_question

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        for i, prompt in enumerate(prompts):
            question = prompt.rsplit("Question: ", 1)[1].split("<|im_end|>", 1)[0].strip()
            sql = self.gold_by_question[question]
            yield (
                [i],
                [[f"<reasoning>\nFirst restate the gold.\n</reasoning>\n<sql>\n{sql}\n</sql>"]],
            )


@pytest.mark.parametrize("source", ["gretel", "spider"])
def test_gold_as_prediction_scores_perfect_on_real_data(
    source: str, request: pytest.FixtureRequest, tmp_path: Path, tokenizer: object
) -> None:
    from sqlgrpo.data import load_samples

    path = request.getfixturevalue(
        "gretel_train_path" if source == "gretel" else "spider_subset_path"
    )
    samples = load_samples(str(path)).samples
    oracle = OracleModel({s.question: s.sql for s in samples})
    rule = "seed" if source == "gretel" else "spider"
    cfg = EvalConfig(
        model="oracle",
        data=str(path),
        out_dir=str(tmp_path / "ev"),
        limit=40,
        seed=0,
        compare_rule=rule,
        generation=GenerationConfig(show_progress=False),
    )
    m = evaluate(cfg, tokenizer=tokenizer, generator=oracle).metrics
    records = _jsonl(tmp_path / "ev" / "predictions.jsonl")
    assert m["n"] == 40 and m["format_rate"] == 1.0
    broken_gold = [r for r in records if r["gold_kind"] == "gold_error"]
    assert all(not r["match"] for r in broken_gold)  # counted, and counted as wrong
    for r in records:
        if r["gold_kind"] != "gold_error":
            assert r["match"] and r["executed"], (r["id"], r["execution"])
    assert m["execution_accuracy"] == pytest.approx(1 - len(broken_gold) / 40)


def test_strict_and_soft_format_rates_are_both_reported() -> None:
    """The spec's soft pattern allows text around the block; the strict rate does not."""
    from sqlgrpo.evaluation.metrics import aggregate
    from sqlgrpo.rewards.format import soft_format_ok, strict_format_ok

    outputs = [
        "<reasoning>\nread t\n</reasoning>\n<sql>\nSELECT 1;\n</sql>",
        "Sure!\n<reasoning>read t</reasoning><sql>SELECT 1;</sql>\nHope it helps.",
        "<reasoning></reasoning><sql>SELECT 1;</sql>",
        "SELECT 1;",
    ]
    records = [
        {"id": str(i), "format_ok": soft_format_ok(o), "format_strict_ok": strict_format_ok(o)}
        for i, o in enumerate(outputs)
    ]
    m = aggregate(records)
    assert m["format_rate"] == pytest.approx(3 / 4)
    assert m["format_rate_strict"] == pytest.approx(1 / 4)


def test_each_prediction_runs_once_for_record_and_reward(
    tmp_path: Path, tokenizer: object, scripted: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's execution check and the execution reward share one outcome."""
    from sqlgrpo.sql.execution import ExecutionChecker

    spec, _ = scripted
    calls: list[tuple] = []
    real = ExecutionChecker._check_one

    def counting(self, pred_sql, gold_sql, sql_context, db_path):  # type: ignore[no-untyped-def]
        calls.append((pred_sql, gold_sql, sql_context, db_path))
        return real(self, pred_sql, gold_sql, sql_context, db_path)

    monkeypatch.setattr(ExecutionChecker, "_check_one", counting)
    gen = ScriptedModel({i: o["completion"] for i, o in spec["outputs"].items()})
    cfg = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        generation=GenerationConfig(show_progress=False),
    )
    evaluate(cfg, tokenizer=tokenizer, generator=gen)
    records = _jsonl(tmp_path / "ev" / "predictions.jsonl")
    with_sql = [r for r in records if r["sql"] is not None]
    assert with_sql
    assert len(calls) == len(set(calls)), "a prediction ran twice"
    for r in with_sql:  # the reward still scored the prediction the record checked
        assert r["rewards"]["execute_query_reward_func"] >= 0.0
