"""Prompt pre-screening: candidate order, solve counting by execution, selection, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.data import PromptConfig, load_samples
from sqlgrpo.training.prescreen import (
    PRESCREEN_FILE,
    count_solved,
    keep_sometimes_solved,
    run_prescreen,
    select_candidates,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_DATA = FIXTURES / "train_tiny_gretel.jsonl"


@pytest.fixture(scope="module")
def samples():
    return list(load_samples(str(TINY_DATA), split=None).samples)


def test_candidates_are_seeded_and_prefer_samples_after_the_warmup(samples) -> None:
    first = select_candidates(samples, 5, skip_first=3, seed=1)
    assert [s.id for s in first] == [
        s.id for s in select_candidates(samples, 5, skip_first=3, seed=1)
    ]
    warmup_ids = {s.id for s in samples[:3]}
    assert not warmup_ids & {s.id for s in first}  # 5 samples follow the 3 warm-up ones
    everything = select_candidates(samples, 100, skip_first=3, seed=1)
    assert sorted(s.id for s in everything) == sorted(s.id for s in samples)
    assert {s.id for s in everything[-3:]} == warmup_ids  # warm-up samples come last
    assert [s.id for s in select_candidates(samples, 8, seed=2)] != [
        s.id for s in select_candidates(samples, 8, seed=3)
    ]


def test_solve_counts_run_the_sql_against_the_gold(samples) -> None:
    bikes, rivers = samples[0], samples[1]
    prefill = "<reasoning>\n"
    right = f"Count the Oslo bikes.\n</reasoning>\n<sql>\n{bikes.sql}\n</sql>"
    same_rows = "x\n</reasoning>\n<sql>SELECT count(bike_id) FROM bikes WHERE city='Oslo'</sql>"
    wrong = "x\n</reasoning>\n<sql>SELECT COUNT(*) FROM bikes</sql>"
    broken = "x\n</reasoning>\n<sql>SELEC nothing</sql>"
    untagged = bikes.sql
    counts = count_solved(
        [bikes, rivers],
        [
            [right, same_rows, wrong, broken, untagged],
            [wrong, f"y</reasoning><sql>{rivers.sql}</sql>"],
        ],
        prefill=prefill,
    )
    assert counts == [2, 1]


def test_keep_only_sometimes_solved(samples) -> None:
    kept = keep_sometimes_solved(samples[:4], [0, 1, 4, 3], generations=4)
    assert [s.id for s in kept] == [samples[1].id, samples[3].id]


def test_saved_screen_is_reused_for_the_same_candidates(samples, tmp_path: Path) -> None:
    candidates = select_candidates(samples, 4, seed=0)
    saved = {
        "generations": 4,
        "policy": "warm",
        "candidates": [s.id for s in candidates],
        "solved": {s.id: i for i, s in enumerate(candidates)},
        "kept": [candidates[1].id, candidates[2].id, candidates[3].id],
        "seconds": 12.0,
        "settings": {
            "temperature": 0.8,
            "max_new_tokens": 8,
            "compare_rule": "seed",
            "prefill": "",
        },
    }
    (tmp_path / PRESCREEN_FILE).write_text(json.dumps(saved))
    result = run_prescreen(
        None, None, samples, PromptConfig(), n=4, generations=4, max_new_tokens=8,
        temperature=0.8, batch_size=2, seed=0, policy="warm", out_dir=tmp_path,
    )  # fmt: skip
    assert result.kept == saved["kept"] and result.solved == saved["solved"]
    assert result.never == 1 and result.always == 0
    # another policy: it screens again, which fails at once without a tokenizer or model
    with pytest.raises(AttributeError):
        run_prescreen(
            None, None, samples, PromptConfig(), n=4, generations=4, max_new_tokens=8,
            temperature=0.8, batch_size=2, seed=0, policy="other", out_dir=tmp_path,
        )  # fmt: skip


def test_training_keeps_only_screened_prompts(samples, monkeypatch, tmp_path: Path) -> None:
    import sqlgrpo.training.prescreen as prescreen
    from sqlgrpo.training.config import parse_run_config
    from sqlgrpo.training.prescreen import ScreenResult
    from sqlgrpo.training.prescreen import prescreen_run_samples as _prescreened

    recipe = FIXTURES / "train_tiny_recipe.yaml"
    cfg = parse_run_config(
        ["--config", str(recipe), "--output_dir", str(tmp_path), "--prescreen_prompts", "6"]
    )  # 4 completions per step with 4 generations: one prompt per step

    def fake_screen(model, tokenizer, candidates, prompt, **kwargs):
        kept = [s.id for s in candidates[1:3]]
        solved = {s.id: (2 if s.id in kept else 0) for s in candidates}
        return ScreenResult(4, "p", list(solved), solved, kept)

    monkeypatch.setattr(prescreen, "run_prescreen", fake_screen)
    assert [s.id for s in _prescreened(cfg, None, None, samples, "p")] == [
        s.id for s in samples[1:3]
    ]
    wide = parse_run_config(
        ["--config", str(recipe), "--output_dir", str(tmp_path), "--prescreen_prompts", "6",
         "--per_device_train_batch_size", "12", "--num_generations", "4"]
    )  # fmt: skip
    assert _prescreened(wide, None, None, samples, "p") == samples  # 2 kept < 3 per step
