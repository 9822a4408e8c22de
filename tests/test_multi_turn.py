"""Multi-turn GRPO (``rollout_turns``): two training steps of the tiny model whose rollouts alternate
answers and sandbox observations; the observation tokens are masked from the loss, the turn
limit and the completion budget hold, hostile statements in a turn end as the sandbox classifies
them, observations are bounded, and the rewards score the last answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sqlgrpo.cli import main
from sqlgrpo.generation.feedback import TRUNCATION_MARK
from sqlgrpo.training.trainer import SqlGrpoTrainer

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "tests" / "fixtures" / "train_tiny_recipe.yaml"
TINY_DATA = REPO / "tests" / "fixtures" / "train_tiny_gretel.jsonl"
PREFILL = "<reasoning>\n"
HANG = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r;"
BOMB = "SELECT zeroblob(2000000);"
LONG_NAME = "nme_" + "x" * 300
FULL_EXECUTION = 1.2  # the execution reward's weight: a correct answer earns all of it


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eval_tiny_model import tiny_model_dir as build

    return build(tmp_path_factory.mktemp("tiny-multi-turn"))


def _train(run: Path, model_dir: Path, *extra: str) -> int:
    return main(
        [
            "train", "--config", str(RECIPE), "--model_name_or_path", str(model_dir),
            "--dataset_source", str(TINY_DATA), "--output_dir", str(run),
            "--save_steps", "100", "--sql_timeout_s", "0.5", *extra,
        ]
    )  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Spy:
    """Keeps what the rollout returned and what the loss saw, step by step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from sqlgrpo.training import multi_turn, shared_prefix

        self.rollouts: list[dict[str, Any]] = []
        self.losses: list[dict[str, Any]] = []
        self.shared_prefix_calls = 0
        real_call = multi_turn.MultiTurnRollout.__call__
        real_loss = SqlGrpoTrainer.compute_loss
        real_shared = shared_prefix.shared_prefix_logps

        def call(rollout: Any, prompts: list, trainer: Any) -> dict:
            out = real_call(rollout, prompts, trainer)
            self.rollouts.append({**out, "tokenizer": trainer.processing_class})
            return out

        def loss(trainer: Any, model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            self.losses.append({k: inputs[k].clone() for k in ("completion_ids", "tool_mask")})
            return real_loss(trainer, model, inputs, *args, **kwargs)

        def shared(*args: Any, **kwargs: Any) -> Any:
            self.shared_prefix_calls += 1
            return real_shared(*args, **kwargs)

        monkeypatch.setattr(multi_turn.MultiTurnRollout, "__call__", call)
        monkeypatch.setattr(SqlGrpoTrainer, "compute_loss", loss)
        monkeypatch.setattr(shared_prefix, "shared_prefix_logps", shared)


def _segments(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Runs of equal mask value: (value, token ids)."""
    runs: list[tuple[int, list[int]]] = []
    for token, bit in zip(ids, mask, strict=True):
        if runs and runs[-1][0] == bit:
            runs[-1][1].append(token)
        else:
            runs.append((bit, [token]))
    return runs


def _check_masks(spy: Spy, turns: int, budget: int, observation_tokens: int) -> list[int]:
    """Every rollout row: answers (mask 1) and observation turns (mask 0) alternate, at most
    ``turns`` answers, inside the budget, each observation bounded; the loss saw the same mask.
    Returns the number of answers of every row."""
    answers_per_row = []
    for out in spy.rollouts:
        tok = out["tokenizer"]
        for ids, mask, used in zip(
            out["completion_ids"], out["env_mask"], out["rollout_turns_used"], strict=True
        ):
            assert len(ids) == len(mask) <= budget
            runs = _segments(ids, mask)
            answers = [r for bit, r in runs if bit == 1]
            observations = [r for bit, r in runs if bit == 0]
            assert runs[0][0] == 1 and len(answers) == used <= turns
            assert len(observations) == used - 1  # answer, observation, answer, ...
            for obs in observations:
                text = tok.decode(obs)
                body = text.split("<observation>\n", 1)[1].split("\n</observation>", 1)[0]
                assert text.rstrip().endswith("assistant\n" + PREFILL.strip())
                assert len(tok(body, add_special_tokens=False)["input_ids"]) <= observation_tokens
            answers_per_row.append(used)
    # the loss saw every row (TRL shuffles them) with its mask: pad tokens beyond a row keep 1
    for seen, out in zip(spy.losses, spy.rollouts, strict=True):
        width = seen["completion_ids"].shape[1]
        pad = out["tokenizer"].pad_token_id
        rows = sorted(
            (ids + [pad] * (width - len(ids)), mask + [1] * (width - len(mask)))
            for ids, mask in zip(out["completion_ids"], out["env_mask"], strict=True)
        )
        loss_rows = sorted(
            zip(seen["completion_ids"].tolist(), seen["tool_mask"].tolist(), strict=True)
        )
        assert loss_rows == rows
    return answers_per_row


def test_two_multi_turn_steps_with_the_model_sampling(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The random model never writes SQL (nor ends an answer): every answer is told so and
    answers again, each answer cut at rollout_turn_tokens, until the completion budget leaves
    no room for a third. Under bf16 the sampling copy's log-probabilities follow the tokens
    (0 on observation tokens)."""
    spy = Spy(monkeypatch)
    run = tmp_path / "run"
    extra = ("--rollout_turns", "3", "--rollout_observation_tokens", "12")
    extra += ("--max_completion_length", "110", "--rollout_turn_tokens", "20")
    assert _train(run, tiny_model_dir, *extra, "--precision", "bf16") == 0
    assert len(spy.rollouts) == 2
    used = _check_masks(spy, turns=3, budget=110, observation_tokens=12)
    assert used == [2] * 8, "two answers of 20 tokens and an observation: no room for a third"
    for out in spy.rollouts:
        for ids, mask in zip(out["completion_ids"], out["env_mask"], strict=True):
            assert [len(r) for bit, r in _segments(ids, mask) if bit] == [20, 20]
    for out in spy.rollouts:  # the bf16 copy samples: log-probabilities line up with tokens
        assert out["logprobs"] is not None
        rows = zip(out["completion_ids"], out["logprobs"], out["env_mask"], strict=True)
        for ids, logps, mask in rows:
            assert len(logps) == len(ids)
            assert all(lp == 0.0 for lp, bit in zip(logps, mask, strict=True) if bit == 0)
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for record in steps:
        assert record["rollout/turns_mean"] == 2.0 and record["rollout/out_of_budget"] == 1.0
        assert record["rollout/seconds"] >= record["sampling_seconds"] > 0
        assert record["rollout/observation_tokens_mean"] > 0
    rows = _jsonl(run / "completions.jsonl")
    assert any("<observation>" in r["completion"] for r in rows)  # the transcript is logged


def _gold_by_question() -> dict[str, str]:
    return {r["sql_prompt"]: r["sql"] for r in _jsonl(TINY_DATA)}


def _scripted_sampler(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the trainer's sampler by a script (per group: a hanging query then the gold, a
    memory bomb then the gold, the gold at once, a long wrong name twice); returns the sizes
    of the batches it was asked to sample."""
    gold = _gold_by_question()
    batches: list[int] = []

    def answer(sql: str) -> str:
        return f"First, find the table.\nThen filter it.\n</reasoning>\n<sql>\n{sql}\n</sql>"

    def sample(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tok = self.processing_class
        batches.append(len(prompt_ids))
        out = []
        for position, ids in enumerate(prompt_ids):
            text = tok.decode(ids)
            question = next(q for q in gold if q in text)
            if "<observation>" not in text:  # first turn: by place in the group
                sql = [HANG, BOMB, gold[question], f"SELECT {LONG_NAME};"][position % 4]
            elif LONG_NAME in text:
                sql = f"SELECT {LONG_NAME};"
            else:
                sql = gold[question]
            out.append(tok(answer(sql), add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        return out, None

    monkeypatch.setattr(SqlGrpoTrainer, "_generate_single_turn", sample)
    return batches


def test_hostile_turns_the_limit_and_rewards_on_the_last_answer(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    batches = _scripted_sampler(monkeypatch)
    run = tmp_path / "run"
    extra = ("--rollout_turns", "2", "--max_completion_length", "220")
    assert _train(run, tiny_model_dir, *extra) == 0
    assert batches == [4, 3, 4, 3], "per step: the group, then the three told to answer again"
    assert spy.shared_prefix_calls > 0  # the loss ran on the shared-prefix path
    used = _check_masks(spy, turns=2, budget=220, observation_tokens=64)
    assert used == [2, 2, 1, 2] * 2
    for out in spy.rollouts:
        tok = out["tokenizer"]
        observations = [
            tok.decode([t for t, bit in zip(ids, mask, strict=True) if bit == 0])
            for ids, mask in zip(out["completion_ids"], out["env_mask"], strict=True)
        ]
        assert "error (timeout): " in observations[0]
        assert "error (resource_limit): " in observations[1]
        assert observations[2] == ""  # the right answer stands
        assert "error (missing_column): " in observations[3] and TRUNCATION_MARK in observations[3]
        assert out["rollout_final_answer"][0].endswith("</sql>")
        assert HANG not in out["rollout_final_answer"][0]
    rows = _jsonl(run / "completions.jsonl")
    assert len(rows) == 8
    for step in (1, 2):
        scores = [r["rewards"]["execute_query_reward_func"] for r in rows if r["step"] == step]
        # the first three end on the gold answer (two after an observation): equal scores,
        # the full weight for a query (a DML answer earns its own share, SPEC 2.4)
        assert scores[0] == scores[1] == scores[2] >= FULL_EXECUTION / 2
        assert scores[3] < scores[0]  # wrong at the limit: scored on that last answer
    first = next(r for r in rows if "error (timeout)" in r["completion"])
    assert first["completion"].startswith(PREFILL) and HANG in first["completion"]
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    for record in steps:
        assert record["rollout/turns_mean"] == pytest.approx(7 / 4)
        assert record["rollout/first_turn_match"] == pytest.approx(1 / 4)
        assert record["rollout/final_turn_match"] == pytest.approx(3 / 4)
        assert record["skipped_backward"] == 0.0  # the rewards differ: the loss ran


def test_turn_settings_are_checked() -> None:
    from sqlgrpo.training.config import SqlGrpoArguments

    with pytest.raises(ValueError, match="rollout_turns must be >= 1"):
        SqlGrpoArguments(rollout_turns=0)
    with pytest.raises(ValueError, match="rollout_observation_tokens"):
        SqlGrpoArguments(rollout_observation_tokens=2)
    assert SqlGrpoArguments(rollout_turns=3).feedback().turns == 3


def test_single_turn_runs_have_no_rollout() -> None:
    from sqlgrpo.training.config import SqlGrpoArguments
    from sqlgrpo.training.train import build_rollout

    assert build_rollout(SqlGrpoArguments(), PREFILL, []) is None
    rollout = build_rollout(SqlGrpoArguments(rollout_turns=2), PREFILL, [])
    assert rollout.feedback.turns == 2 and rollout.checker.rule == "seed"
