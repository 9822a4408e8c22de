"""Execution voting (self-consistency), the running-total progress bar and BIRD metrics in
an evaluation, with scripted generators."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate, greedy_twin
from sqlgrpo.generation import GenerationConfig
from sqlgrpo.generation.voting import vote_by_execution

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "eval_samples.jsonl"
VOTING = json.loads((FIXTURES / "eval_voting.json").read_text())
QUESTIONS = {json.loads(line)["sql_prompt"]: json.loads(line)["id"] for line in SAMPLES.open()}


def _wrap(sql: str) -> str:
    return f"<reasoning>\nFirst the table, then the filter.\n</reasoning>\n<sql>\n{sql}\n</sql>"


class Scripted:
    """Answers each prompt with the scripted completions for its question id."""

    name = "scripted"

    def __init__(self, answers: dict[str, list[str]], batch_size: int = 3) -> None:
        self.answers = answers
        self.batch_size = batch_size
        self.cfg = GenerationConfig(temperature=0.8, num_samples=4, show_progress=False)

    def _for(self, prompt: str) -> list[str]:
        (sid,) = [i for q, i in QUESTIONS.items() if q in prompt]
        return [_wrap(s) for s in self.answers[sid]]

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        for start in range(0, len(prompts), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(prompts))))
            yield idx, [self._for(prompts[i]) for i in idx]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> object:
    from transformers import AutoTokenizer

    from eval_tiny_model import tiny_model_dir

    return AutoTokenizer.from_pretrained(str(tiny_model_dir(tmp_path_factory.mktemp("m"))))


def _config(tmp_path: Path, **kwargs: object) -> EvalConfig:
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(sorted(VOTING["questions"])))
    gen = kwargs.pop("generation", GenerationConfig(temperature=0.8, num_samples=4))
    return EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / "ev"),
        ids_file=str(ids),
        generation=gen,
        **kwargs,
    )


def test_vote_reports_greedy_voted_and_pass_at_n(tmp_path: Path, tokenizer: object) -> None:
    qs = VOTING["questions"]
    sampler = Scripted({i: q["samples"] for i, q in qs.items()})
    greedy = Scripted({i: [q["greedy"]] for i, q in qs.items()})
    cfg = _config(tmp_path, vote="execution")
    result = evaluate(cfg, tokenizer=tokenizer, generator=sampler, greedy_generator=greedy)
    records = {
        json.loads(line)["id"]: json.loads(line)
        for line in (tmp_path / "ev" / "predictions.jsonl").open()
    }
    for sid, q in qs.items():
        r, want = records[sid], q["expect"]
        assert r["sql"] == q["greedy"]
        assert [s["sql"] for s in r["samples"]] == q["samples"]
        assert r["match"] is want["greedy"], sid
        assert r["vote"]["match"] is want["voted"], sid
        assert any(s["match"] for s in r["samples"]) is want["pass"], sid
        assert r["vote"]["index"] == want["vote_index"]
        assert r["vote"]["votes"] == want["votes"]
        assert r["vote"]["n_results"] == want["n_results"]
    voting = result.metrics["voting"]
    for key, value in VOTING["metrics"].items():
        assert voting[key] == pytest.approx(value), key
    assert voting["n_samples"] == 4 and voting["method"] == "execution"
    assert result.metrics["execution_accuracy"] == pytest.approx(
        VOTING["metrics"]["greedy_execution_accuracy"]
    )


def test_vote_needs_several_samples() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        EvalConfig(model="m", data="bundled", vote="execution")
    with pytest.raises(ValueError, match="vote"):
        EvalConfig(
            model="m",
            data="bundled",
            vote="majority",
            generation=GenerationConfig(temperature=1.0, num_samples=3),
        )


def test_vote_ties_go_to_the_earliest_and_failures_do_not_vote() -> None:
    assert vote_by_execution([None, "a", "b", "b", "a"]) == (1, 2)
    assert vote_by_execution([None, None]) == (0, 0)


def test_greedy_twin_shares_the_model_and_decodes_greedily() -> None:
    sampler = Scripted({})
    twin = greedy_twin(sampler)
    assert twin.cfg.temperature == 0.0 and twin.cfg.num_samples == 1
    assert twin.answers is sampler.answers and sampler.cfg.num_samples == 4
    with pytest.raises(ValueError, match="greedy"):
        greedy_twin(object())  # type: ignore[arg-type]


def test_progress_bar_shows_running_totals(
    tmp_path: Path, tokenizer: object, capsys: pytest.CaptureFixture
) -> None:
    qs = VOTING["questions"]
    greedy = Scripted({i: [q["greedy"]] for i, q in qs.items()}, batch_size=1)
    cfg = _config(tmp_path, generation=GenerationConfig(show_progress=True))
    evaluate(cfg, tokenizer=tokenizer, generator=greedy)
    err = capsys.readouterr().err
    expected = [q["expect"]["greedy"] for q in qs.values()]  # ids file keeps data order
    running = [f"acc={sum(expected[: k + 1])}/{k + 1}" for k in range(len(expected))]
    for text in running:
        assert text in err
    assert f"acc={sum(expected)}/{len(expected)}" in err


def test_bird_metrics_in_an_evaluation(tmp_path: Path, tokenizer: object) -> None:
    qs = VOTING["questions"]
    greedy = Scripted({i: [q["greedy"]] for i, q in qs.items()})
    cfg = _config(tmp_path, bird_metrics=True, generation=GenerationConfig())
    m = evaluate(cfg, tokenizer=tokenizer, generator=greedy).metrics
    records = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").open()]
    by_id = {r["id"]: r["bird"] for r in records}
    # s1: 'Spain' instead of 'USA' -> one gold row paired with one unrelated row.
    assert by_id["s1"]["soft_f1"] == 0.0 and by_id["s2"]["soft_f1"] == 1.0
    assert by_id["s3"]["soft_f1"] == 0.0 and by_id["s7"]["soft_f1"] == 1.0
    assert by_id["s2"]["rves_reward"] is None  # gretel-style context: no file to time on
    assert m["bird"]["soft_f1"] == pytest.approx(50.0) and m["bird"]["ex"] == pytest.approx(50.0)
    assert m["bird"]["r_ves"] is None


def test_writing_answers_vote_by_the_state_they_leave() -> None:
    from sqlgrpo.generation.voting import result_key
    from sqlgrpo.sql import DatabaseCache

    context = "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2);"
    db = DatabaseCache().get(sql_context=context)
    answers = [
        "DELETE FROM t WHERE a = 1",
        "UPDATE t SET a = 3 WHERE a = 1",
        "DELETE FROM t WHERE a < 2",  # other text, same resulting state as the first
        "INSERT INTO nope VALUES (1)",  # fails: no vote
    ]
    keys = [result_key(db.run(sql, capture_state=True)) for sql in answers]
    assert keys[0] == keys[2] and keys[0] != keys[1] and keys[3] is None
    assert vote_by_execution(keys) == (0, 2)
