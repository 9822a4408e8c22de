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
    }
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "demo"
    argv = ["demo", "--recipe", str(recipe_path), "--out", str(out), "--data", "bundled",
            "--split", "test", "--eval-limit", "3", "--batch-size", "3"]  # fmt: skip

    assert main(argv) == 0
    printed = capsys.readouterr().out
    for folder in (out / "eval_base", out / "eval_warmup", out / "train" / "eval_grpo"):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["n"] == 3
    # the same seeded sample for every model, so the comparison is paired
    ids = [
        {json.loads(line)["id"] for line in (folder / "predictions.jsonl").open()}
        for folder in (out / "eval_base", out / "eval_warmup", out / "train" / "eval_grpo")
    ]
    assert ids[0] == ids[1] == ids[2]
    page = (out / "train" / "report.html").read_text()
    assert "baseline (eval_base)" in page and "baseline (eval_warmup)" in page
    assert "paired base -> GRPO: 3 shared samples" in printed
    assert f"report: {out / 'train' / 'report.html'}" in printed.splitlines()[-1]

    # a second run finds every stage done and trains nothing again
    assert main(argv) == 0
    assert "already trained" in capsys.readouterr().out


def test_demo_missing_recipe_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--recipe", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "recipe not found" in capsys.readouterr().err
