"""Issue 37: kill -9 at a random moment of a 10-step run whose weights and optimizer moments
change at every step, resume, and get what the uninterrupted run has: weights, AdamW state,
scheduler, random state and data order equal at the same step to 1e-6.

The tiny random model never writes the SQL tags, so the SQL rewards are all 0 and every
backward would be skipped; these runs score completions with ``text_checksum``
(tests/train_text_reward.py), which varies between completions."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlgrpo.training.train import last_checkpoint

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
STEPS = 10
TOLERANCE = 1e-6


def _args(model_dir: Path, run_dir: Path) -> list[str]:
    return [
        "train",
        "--config", str(FIXTURES / "train_tiny_recipe.yaml"),
        "--model_name_or_path", str(model_dir),
        "--dataset_source", str(FIXTURES / "train_tiny_gretel.jsonl"),
        "--output_dir", str(run_dir),
        "--max_steps", str(STEPS),
        "--save_steps", "1",
        "--save_total_limit", "3",
        "--reward_funcs", "text_checksum",
        "--learning_rate", "5e-3",  # steps that move the weights well past the tolerance
        "--plot", "false",
    ]  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete(folder: Path) -> bool:
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _kill_at_random(model_dir: Path, run_dir: Path, rng: random.Random) -> str:
    """Start the run as its own process and SIGKILL it at a random moment after its first
    checkpoint and before its last step; returns where it was killed."""
    after = rng.randint(1, STEPS - 2)  # the checkpoint that must be complete first
    fraction = rng.random()  # how far into the next step
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]))
    with (run_dir.parent / "killed.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "train_text_reward.py"), *_args(model_dir, run_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
        try:
            seen: dict[int, float] = {}
            limit = time.monotonic() + 500
            while proc.poll() is None and time.monotonic() < limit:
                for step in (after - 1, after):
                    if step not in seen and step > 0 and _complete(run_dir / f"checkpoint-{step}"):
                        seen[step] = time.monotonic()
                if after in seen:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, f"the run ended before the kill: {proc.returncode}"
            step_s = seen[after] - seen[after - 1] if after - 1 in seen else 2.0
            time.sleep(fraction * step_s)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return f"killed {fraction:.2f} of a step ({step_s:.2f} s) after checkpoint-{after}"


def _tensors(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_close(a: object, b: object, where: str) -> None:
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape, where
        if a.is_floating_point():
            diff = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
            assert diff <= TOLERANCE, f"{where}: max difference {diff:.3g}"
        else:
            assert torch.equal(a, b), where
    elif type(a).__module__ == "numpy" and hasattr(a, "shape"):
        import numpy as np

        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=TOLERANCE), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.slow  # 20 training steps and a training subprocess: ~80 s of CPU, ~3.5 min loaded
@pytest.mark.timeout(900)
def test_kill_9_at_a_random_moment_then_resume_equals_the_uninterrupted_run(
    tmp_path: Path,
) -> None:
    import torch

    import train_text_reward  # noqa: F401 - registers text_checksum in this process too
    from eval_tiny_model import tiny_model_dir
    from sqlgrpo.cli import main

    model_dir = tiny_model_dir(tmp_path / "model")
    straight, killed = tmp_path / "straight" / "run", tmp_path / "killed" / "run"
    straight.parent.mkdir()
    killed.parent.mkdir()
    assert main(_args(model_dir, straight)) == 0

    # weights and moments really move: every step ran a backward on nonzero advantages
    steps = [r for r in _jsonl(straight / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert all(r["skipped_backward"] == 0.0 and r["grad_norm"] > 0 for r in steps), steps
    start = _tensors(model_dir) if (model_dir / "model.safetensors").exists() else None
    before, after = _tensors(straight / "checkpoint-9"), _tensors(straight / "checkpoint-10")
    moved = max((after[k].double() - before[k].double()).abs().max().item() for k in after)
    assert moved > 100 * TOLERANCE, moved
    if start is not None:
        assert any(not torch.equal(start[k], after[k]) for k in after)

    seed = int(os.environ.get("SQLGRPO_KILL_SEED", time.time_ns() % 1_000_000))
    where = _kill_at_random(model_dir, killed, random.Random(seed))
    context = f"{where} (SQLGRPO_KILL_SEED={seed})"
    resumed_from = last_checkpoint(killed)
    assert resumed_from is not None, context
    assert main(["train", "--config", str(killed / "config.yaml"), "--output_dir", str(killed),
                 "--resume", "true"]) == 0, context  # fmt: skip

    for step in (STEPS - 1, STEPS):
        a, b = straight / f"checkpoint-{step}", killed / f"checkpoint-{step}"
        _assert_close(_tensors(a), _tensors(b), f"{context}: weights at step {step}")
        load = {"weights_only": False}
        _assert_close(
            torch.load(a / "optimizer.pt", **load)["state"],
            torch.load(b / "optimizer.pt", **load)["state"],
            f"{context}: AdamW moments at step {step}",
        )
        _assert_close(
            torch.load(a / "scheduler.pt", **load),
            torch.load(b / "scheduler.pt", **load),
            f"{context}: scheduler at step {step}",
        )
        _assert_close(
            torch.load(a / "rng_state.pth", **load),
            torch.load(b / "rng_state.pth", **load),
            f"{context}: random state at step {step}",
        )
        state_a = json.loads((a / "trainer_state.json").read_text())
        state_b = json.loads((b / "trainer_state.json").read_text())
        assert state_a["global_step"] == state_b["global_step"] == step, context

    def rollouts(run: Path) -> list[tuple[int, str, str]]:
        rows = _jsonl(run / "completions.jsonl")
        return [(r["step"], r["prompt"], r["completion"]) for r in rows]

    # same data order and, with the same weights and random state, the same completions
    assert rollouts(killed) == rollouts(straight), context
    rewards = [(r["step"], r["reward"]) for r in _jsonl(killed / "metrics.jsonl") if "reward" in r]
    assert rewards == [(r["step"], r["reward"]) for r in steps], context


def test_each_epoch_order_depends_only_on_seed_and_epoch() -> None:
    """The sampler of a resumed run, told its epoch, yields what the uninterrupted run's
    sampler yields in that epoch (TRL's own sampler replays epoch 0 there)."""
    from trl.trainer.utils import RepeatSampler

    from sqlgrpo.training.trainer import EpochRepeatSampler

    def sampler(cls: type) -> RepeatSampler:
        return cls(list(range(8)), mini_repeat_count=2, batch_size=2, repeat_count=1, seed=3)

    straight = sampler(EpochRepeatSampler)
    epochs = [list(straight) for _ in range(4)]
    trl = sampler(RepeatSampler)
    assert epochs == [list(trl) for _ in range(4)]  # the same sequence as TRL's, uninterrupted
    assert len({tuple(e) for e in epochs}) > 1  # the order changes between epochs
    for epoch in range(4):
        resumed = sampler(EpochRepeatSampler)
        resumed.set_epoch(epoch)
        assert list(resumed) == epochs[epoch]
    replayed = sampler(RepeatSampler)
    assert list(replayed) == epochs[0] != epochs[2]  # what TRL's gives a run resumed in epoch 2
