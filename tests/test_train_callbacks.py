"""Run-folder writers: metrics.jsonl reading, reward curves, completions log, interrupt."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from sqlgrpo.evaluation.reward_curves import reward_series
from sqlgrpo.training.callbacks import (
    GracefulInterrupt,
    plot_reward_curves,
    read_metrics,
    write_completions,
)


def _metrics(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_reward_series_and_plot(tmp_path: Path) -> None:
    records = [
        {"step": s, "reward": 0.1 * s, "rewards/fmt/mean": 0.2 * s, "rewards/fmt/std": 0.0,
         "loss": 0.0}
        for s in (1, 2, 3)
    ] + [{"step": 3, "train_runtime": 1.0}]  # fmt: skip
    path = _metrics(tmp_path, records)
    series = reward_series(read_metrics(path))
    assert set(series) == {"total", "fmt"}
    assert series["fmt"] == (
        [1, 2, 3],
        [pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.6)],
    )
    png = plot_reward_curves(path, tmp_path / "plots" / "rewards.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_add_the_completion_length(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from sqlgrpo.evaluation.reward_curves import LENGTH, training_curves

    records = [
        {"step": s, "reward": 0.5, "rewards/fmt/mean": 0.5, "completions/mean_length": 60.0 + s}
        for s in (1, 2, 3)
    ]
    series = training_curves(records)
    assert set(series) == {"total", "fmt", LENGTH}
    assert series[LENGTH] == ([1, 2, 3], [61.0, 62.0, 63.0])
    # a length alone is not a reward curve: nothing to plot
    assert training_curves([{"step": 1, "completions/mean_length": 9.0}]) == {}
    # the plot gains a panel for it: three panels side by side instead of two
    with_length = plot_reward_curves(_metrics(tmp_path, records), tmp_path / "a.png")
    without = [{k: v for k, v in r.items() if k != "completions/mean_length"} for r in records]
    (tmp_path / "b").mkdir()
    no_length = plot_reward_curves(_metrics(tmp_path / "b", without), tmp_path / "b.png")
    assert imread(with_length).shape[1] > imread(no_length).shape[1]


def test_no_rewards_no_plot(tmp_path: Path) -> None:
    path = _metrics(tmp_path, [{"step": 1, "train_runtime": 2.0}])
    assert plot_reward_curves(path, tmp_path / "r.png") is None
    assert not (tmp_path / "r.png").exists()


def test_malformed_metrics_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2,\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2:"):
        read_metrics(path)


def test_write_completions_restores_prefill_and_totals(tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    chat_prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}]
    n = write_completions(
        path, 4, [chat_prompt, "raw prompt"], ["a</reasoning>", [{"content": "b"}]],
        {"fmt": [1.0, 0.0], "exec": [0.5, float("nan")]}, [0.7, -0.7],
        prefill="<reasoning>\n", limit=0,
    )  # fmt: skip
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert n == 2 and len(rows) == 2
    assert rows[0]["prompt"] == "Q1" and rows[1]["prompt"] == "raw prompt"
    assert rows[0]["completion"] == "<reasoning>\na</reasoning>"
    assert rows[1]["completion"] == "<reasoning>\nb"
    assert rows[0]["reward"] == pytest.approx(1.5)
    assert rows[1]["rewards"]["exec"] is None and rows[1]["reward"] == 0.0
    assert write_completions(path, 5, ["p"] * 3, ["c"] * 3, {}, [0.0] * 3, limit=1) == 1
    with pytest.raises(ValueError, match="misaligned"):
        write_completions(path, 6, ["p"], ["c", "d"], {}, [0.0, 0.0])


def test_interrupt_requests_save_then_second_signal_raises() -> None:
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    state = SimpleNamespace(global_step=3)
    before = signal.getsignal(signal.SIGINT)
    with GracefulInterrupt() as interrupt:
        interrupt.on_step_end(None, state, control)
        assert not control.should_save  # nothing requested yet
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested
        interrupt.on_step_end(None, state, control)
        assert control.should_save and control.should_training_stop
        assert interrupt.stopped_at == 3
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
