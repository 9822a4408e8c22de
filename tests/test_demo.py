"""`sqlgrpo demo` end to end on a tiny random model: every stage runs and the summary prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eval_tiny_model import tiny_model_dir
from sqlgrpo.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def test_demo_runs_every_stage_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the tiny recipe names its data relative to the repo
    recipe = yaml.safe_load((FIXTURES / "train_tiny_recipe.yaml").read_text())
    recipe |= {
        "model_name_or_path": str(tiny_model_dir(tmp_path)),
        "sft_warmup_samples": 4,
        "sft_warmup_max_steps": 1,
        "sft_warmup_batch_size": 2,
        "eval_holdout": 2,
    }
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "demo"
    argv = ["demo", "--recipe", str(recipe_path), "--out", str(out), "--data", "bundled",
            "--split", "test", "--eval-limit", "3", "--batch-size", "3"]  # fmt: skip

    assert main(argv) == 0
    printed = capsys.readouterr().out
    test_split = (out / "eval_base", out / "eval_warmup", out / "train" / "eval_grpo")
    held_split = (out / "heldout_base", out / "heldout_warmup", out / "train" / "heldout_grpo")
    for folders, n in ((test_split, 3), (held_split, 2)):
        for folder in folders:
            assert json.loads((folder / "metrics.json").read_text())["n"] == n
        # the same samples for every model, so the comparison is paired
        ids = [
            {json.loads(line)["id"] for line in (folder / "predictions.jsonl").open()}
            for folder in folders
        ]
        assert ids[0] == ids[1] == ids[2]
    # the held-out split is exactly the rows the run kept out of training
    held_ids = json.loads((out / "train" / "holdout_ids.json").read_text())
    assert ids[0] == set(held_ids)
    report = (out / "train" / "report.md").read_text()
    assert "bundled:test (3 rows): Metrics" in report
    assert "2 held-out rows of the training data" in report
    assert report.count("McNemar exact p-value") == 4  # base and warm-up vs GRPO, per split
    assert report.count("| hack monitor: run_on (share) |") == 2  # beside the rewards, per split
    assert "hack monitors (share of outputs): run_on, bare_select, group_by_key" in printed
    assert "paired base -> GRPO: 3 shared samples" in printed
    assert "paired warm-up -> GRPO: 2 shared samples" in printed
    assert f"report: {out / 'train' / 'report.html'}" in printed.splitlines()[-1]

    # a second run finds every stage done and trains nothing again
    assert main(argv) == 0
    assert "already trained" in capsys.readouterr().out


def test_demo_missing_recipe_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--recipe", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "recipe not found" in capsys.readouterr().err
