"""The shared-prefix loss equals TRL's own: same per-token log-probabilities, loss, gradients.

Each case builds a real ``SqlGrpoTrainer`` (so TRL patches the model with its fused LM
head, wraps LoRA, builds the reference), then scores one micro-batch of real prompts
(rendered with the chat template, left-padded, of different lengths and mixed in the
order TRL's shuffle leaves them) with completions of uneven lengths, once through
``sqlgrpo.training.shared_prefix`` and once through TRL's ``GRPOTrainer`` method.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import sqlgrpo.training.shared_prefix as shared_prefix
from sqlgrpo.data import PromptConfig, Sample, build_messages, load_samples
from sqlgrpo.models.aliases import default_cache_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_DATA = FIXTURES / "train_tiny_gretel.jsonl"
# prompt of each row of the micro-batch (indices into the fixture rows): three prompts of
# different lengths, interleaved; prompt 0 appears three times, 1 and 2 twice
ROW_PROMPTS = (0, 1, 0, 2, 1, 0, 2)
COMPLETION_LENGTHS = (9, 4, 12, 1, 7, 12, 5)


def reward_len(completions, **kwargs) -> list[float]:
    return [float(len(c)) for c in completions]


def _samples() -> list[Sample]:
    return list(load_samples(str(TINY_DATA)).samples)


def _trainer(
    model, tokenizer, tmp_path: Path, *, beta: float = 0.0, lora: bool = False, dataset=None
):
    from datasets import Dataset
    from trl import GRPOConfig

    from sqlgrpo.training.trainer import SqlGrpoTrainer

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
            init_lora_weights=False,  # both factors nonzero: every LoRA weight gets a gradient
        )  # fmt: skip
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        per_device_train_batch_size=len(ROW_PROMPTS),
        num_generations=len(ROW_PROMPTS),
        max_completion_length=max(COMPLETION_LENGTHS),
        beta=beta,
        bf16=False,  # TRL's default autocasts to bf16: the comparison is in fp32
        gradient_checkpointing=False,  # TRL's default is on; the shared pass falls back under it
        report_to="none",
        logging_steps=1,
        max_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    if dataset is None:
        dataset = Dataset.from_list([{"prompt": "x"}] * len(ROW_PROMPTS))
    trainer = SqlGrpoTrainer(
        model=model,
        reward_funcs=reward_len,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train for each step
    return trainer


def _batch(tokenizer, seed: int = 0) -> dict:
    """Real prompts (left-padded), random completions of uneven length (right-padded)."""
    import torch

    samples = _samples()
    prompts = [
        tokenizer.apply_chat_template(
            build_messages(samples[i], PromptConfig()), add_generation_prompt=True, return_dict=True
        )["input_ids"]
        for i in range(3)
    ]
    assert len({len(p) for p in prompts}) == 3, "the prompts must differ in length"
    width = max(len(p) for p in prompts) + 2  # TRL pads a whole generation batch: extra columns
    generator = torch.Generator().manual_seed(seed)
    rows = len(ROW_PROMPTS)
    prompt_ids = torch.full((rows, width), tokenizer.pad_token_id)
    prompt_mask = torch.zeros((rows, width), dtype=torch.long)
    cwidth = max(COMPLETION_LENGTHS)
    completion_ids = torch.full((rows, cwidth), tokenizer.pad_token_id)
    completion_mask = torch.zeros((rows, cwidth), dtype=torch.long)
    for row, (p, n) in enumerate(zip(ROW_PROMPTS, COMPLETION_LENGTHS, strict=True)):
        ids = torch.tensor(prompts[p])
        prompt_ids[row, width - len(ids) :] = ids
        prompt_mask[row, width - len(ids) :] = 1
        completion_ids[row, :n] = torch.randint(0, len(tokenizer), (n,), generator=generator)
        completion_mask[row, :n] = 1
    advantages = torch.randn(rows, generator=generator)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": advantages,
        "num_items_in_batch": completion_mask.sum(),
    }


def _loss_and_grads(trainer, inputs: dict, shared: bool) -> tuple[float, dict]:
    trainer.shared_prefix_loss = shared
    model = trainer.model
    model.train()
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(inputs))
    loss.backward()
    grads = {
        name: p.grad.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad and p.grad is not None
    }
    return float(loss.detach()), grads


def _count_shared_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each shared-prefix call that took the shared path (rows of the chunk)."""
    calls: list[int] = []
    real = shared_prefix.shared_prefix_logps

    def spy(model, input_ids, *args, **kwargs):
        result = real(model, input_ids, *args, **kwargs)
        if result is not None:
            calls.append(int(input_ids.shape[0]))
        return result

    monkeypatch.setattr(shared_prefix, "shared_prefix_logps", spy)
    return calls


def _assert_same(trainer, inputs: dict, monkeypatch, *, atol: float) -> None:
    import torch

    calls = _count_shared_calls(monkeypatch)
    trl_loss, trl_grads = _loss_and_grads(trainer, inputs, shared=False)
    assert calls == []
    loss, grads = _loss_and_grads(trainer, inputs, shared=True)
    assert calls == [len(ROW_PROMPTS)], "the loss must take the shared-prefix path"
    assert loss == pytest.approx(trl_loss, rel=1e-5, abs=1e-6)
    assert grads.keys() == trl_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.count_nonzero(trl_grads[name]) > 0, f"{name}: no gradient to compare"
        torch.testing.assert_close(grad, trl_grads[name], atol=atol, rtol=1e-4, msg=name)


def _per_token(trainer, inputs: dict, shared: bool, batch_size: int | None = None):
    import torch
    from trl import GRPOTrainer

    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    keep = inputs["completion_ids"].shape[1]
    method = type(trainer)._get_per_token_logps_and_entropies
    if not shared:
        method = GRPOTrainer._get_per_token_logps_and_entropies
    with torch.no_grad():
        logps, entropy, _ = method(
            trainer, trainer.model, input_ids, mask, keep, batch_size, compute_entropy=True
        )
    return logps, entropy


@pytest.fixture
def fresh_tiny(tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval_tiny_model import tiny_model_dir

    path = tiny_model_dir(tmp_path / "model")
    return AutoModelForCausalLM.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))


def test_prompt_groups_follow_first_appearance() -> None:
    import torch

    ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6], [0, 5, 6], [7, 8, 9], [0, 0, 6]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]])
    groups = shared_prefix.prompt_groups(ids, mask)
    assert groups.first.tolist() == [0, 1, 5]
    assert groups.row_group.tolist() == [0, 1, 0, 0, 1, 2]


def test_full_finetune_loss_and_gradients_equal_trl(fresh_tiny, tmp_path, monkeypatch) -> None:
    model, tokenizer = fresh_tiny
    trainer = _trainer(model, tokenizer, tmp_path)
    _assert_same(trainer, _batch(tokenizer), monkeypatch, atol=1e-6)


def test_lora_loss_and_gradients_equal_trl(fresh_tiny, tmp_path, monkeypatch) -> None:
    model, tokenizer = fresh_tiny
    trainer = _trainer(model, tokenizer, tmp_path, lora=True)
    inputs = _batch(tokenizer, seed=1)
    _assert_same(trainer, inputs, monkeypatch, atol=1e-6)
    assert all("lora_" in name for name in _loss_and_grads(trainer, inputs, True)[1])


def test_kl_term_reference_and_old_logps_equal_trl(fresh_tiny, tmp_path, monkeypatch) -> None:
    """beta > 0: the reference model's (and, chunked, the old policy's) log-probs match TRL's."""
    import torch

    model, tokenizer = fresh_tiny
    trainer = _trainer(model, tokenizer, tmp_path, beta=0.1)
    assert trainer.ref_model is not None
    inputs = _batch(tokenizer, seed=2)
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    keep = inputs["completion_ids"].shape[1]
    with torch.no_grad():
        ref, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model, input_ids, mask, keep, batch_size=4
        )
        trainer.shared_prefix_loss = False
        trl_ref, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model, input_ids, mask, keep, batch_size=4
        )
        trainer.shared_prefix_loss = True
    torch.testing.assert_close(ref, trl_ref, atol=1e-6, rtol=1e-5)
    # chunks of 4 rows: rows 0-3 share prompt 0, rows 4-6 share nothing
    logps, entropy = _per_token(trainer, inputs, shared=True, batch_size=4)
    trl_logps, trl_entropy = _per_token(trainer, inputs, shared=False, batch_size=4)
    torch.testing.assert_close(logps, trl_logps, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(entropy, trl_entropy, atol=1e-6, rtol=1e-5)
    assert bool((logps[inputs["completion_mask"] == 0] == 0).all()), "padding scores 0"
    inputs["ref_per_token_logps"] = ref
    _assert_same(trainer, inputs, monkeypatch, atol=1e-6)


def test_unsupported_setups_say_why_once_and_use_trl(fresh_tiny, tmp_path, caplog) -> None:
    import torch

    model, tokenizer = fresh_tiny
    trainer = _trainer(model, tokenizer, tmp_path)
    inputs = _batch(tokenizer, seed=3)
    expected, _ = _per_token(trainer, inputs, shared=False)
    trainer.model.gradient_checkpointing_enable()
    trainer.model.train()
    with caplog.at_level(logging.INFO, logger="sqlgrpo.training.trainer"):
        for _ in range(2):
            input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            logps, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model, input_ids, mask, inputs["completion_ids"].shape[1]
            )
    told = [r.getMessage() for r in caplog.records if "shared-prefix loss not used" in r.message]
    assert len(told) == 1 and "gradient checkpointing" in told[0]
    torch.testing.assert_close(logps.detach(), expected, atol=1e-6, rtol=1e-5)
    trainer.model.gradient_checkpointing_disable()
    model.config._attn_implementation = "flex_attention"
    assert "flex_attention" in (shared_prefix.unsupported_reason(trainer.model) or "")


def test_training_steps_take_the_shared_path(fresh_tiny, tmp_path, monkeypatch) -> None:
    """In ``train()`` (which sets up gradient checkpointing, eval/train modes, ...) too."""
    from datasets import Dataset

    model, tokenizer = fresh_tiny
    prompts = [build_messages(s, PromptConfig()) for s in _samples()[:2]]
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    trainer = _trainer(model, tokenizer, tmp_path, dataset=dataset)
    trainer.args.max_completion_length = 6
    trainer.max_completion_length = 6
    trainer.skip_zero_variance = False  # equal rewards would skip the loss altogether
    calls = _count_shared_calls(monkeypatch)
    trainer.train()
    assert calls == [len(ROW_PROMPTS)], "one micro-batch of one prompt's group, shared"


def _smollm2():
    path = default_cache_dir() / "smollm2-135m"
    if not (path / "config.json").is_file():
        pytest.skip(f"needs the converted embedded model at {path} (sqlgrpo models convert)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(str(path), dtype="float32"), (
        AutoTokenizer.from_pretrained(str(path))
    )


def test_smollm2_full_finetune_gradients_equal_trl(tmp_path, monkeypatch) -> None:
    """The embedded model, real prompts (~200 tokens), full fine-tuning."""
    model, tokenizer = _smollm2()
    trainer = _trainer(model, tokenizer, tmp_path)
    _assert_same(trainer, _batch(tokenizer, seed=4), monkeypatch, atol=2e-5)


@pytest.mark.slow  # two forward + backward passes of SmolLM2 with LoRA
def test_smollm2_lora_gradients_equal_trl(tmp_path, monkeypatch) -> None:
    model, tokenizer = _smollm2()
    trainer = _trainer(model, tokenizer, tmp_path, lora=True)
    _assert_same(trainer, _batch(tokenizer, seed=5), monkeypatch, atol=2e-5)
