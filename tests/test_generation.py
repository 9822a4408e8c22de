"""Batched generation on a tiny random Llama: left padding must not change greedy outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlgrpo.generation import (
    GenerationConfig,
    HFGenerator,
    generate,
    make_generator,
    vllm_available,
)

QUESTIONS = [
    "How many rows?",
    "List every vessel name that docked in Rotterdam after 2020, ordered by tonnage descending.",
    "Total sales?",
    "Which customers placed more than three orders in the last quarter and live in Canada or Mexico?",
    "Average age of employees per department, only departments with at least five people.",
]


def _prompts(tokenizer: object) -> list[str]:
    return [
        tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        + "<reasoning>\n"
        for q in QUESTIONS
    ]


def test_batched_greedy_equals_one_by_one(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    lengths = {len(tokenizer(p)["input_ids"]) for p in prompts}  # type: ignore[operator]
    assert len(lengths) > 1, "prompts must differ in length to exercise padding"
    cfg_batched = GenerationConfig(max_new_tokens=12, batch_size=5, show_progress=False)
    cfg_single = GenerationConfig(max_new_tokens=12, batch_size=1, show_progress=False)
    batched = generate(HFGenerator(model, tokenizer, cfg_batched), prompts)
    single = generate(HFGenerator(model, tokenizer, cfg_single), prompts)
    assert all(len(c) == 1 for c in batched)
    assert batched == single
    assert any(c[0].strip() for c in batched), "the random model should emit some text"
    # Order is preserved: the completion for prompt i is the one generated alone for it.
    alone = generate(HFGenerator(model, tokenizer, cfg_single), [prompts[3]])
    assert alone[0] == batched[3]
    assert tokenizer.padding_side == "left"  # type: ignore[attr-defined]


def test_sampling_n_completions_reproducible(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)[:2]
    cfg = GenerationConfig(
        max_new_tokens=8,
        batch_size=2,
        temperature=1.0,
        top_p=0.95,
        num_samples=3,
        seed=7,
        show_progress=False,
    )
    first = generate(HFGenerator(model, tokenizer, cfg), prompts)
    again = generate(HFGenerator(model, tokenizer, cfg), prompts)
    assert [len(c) for c in first] == [3, 3]
    assert first == again
    assert len({t for c in first for t in c}) > 1, "sampling should not give identical texts"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 2}, "temperature > 0"),
        ({"backend": "tgi"}, "backend must be one of"),
        ({"top_p": 0.0}, "top_p"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_make_generator_backends(tiny: tuple[object, object], tmp_path: Path) -> None:
    model, tokenizer = tiny
    gen = make_generator(GenerationConfig(backend="auto"), model=model, tokenizer=tokenizer)
    assert gen.name == "hf"
    if not vllm_available():
        with pytest.raises(RuntimeError, match="vllm"):
            make_generator(GenerationConfig(backend="vllm"), model_path=str(tmp_path))
    with pytest.raises(ValueError, match="loaded model"):
        make_generator(GenerationConfig(backend="hf"), model_path=str(tmp_path))


def test_one_decoder_decision_for_every_path(tiny: tuple[object, object]) -> None:
    """Evaluation (HFGenerator) and GRPO sampling (the trainer's blockers) ask choose_decoder."""
    import copy

    from sqlgrpo.generation import GenerationConfig, HFGenerator, choose_decoder

    model, tokenizer = tiny
    assert choose_decoder(model, "incremental") == ("incremental", None)
    assert choose_decoder(model, "generate")[0] == "generate"
    blocked = choose_decoder(model, "incremental", [(False, "a"), (True, "vLLM generates")])
    assert blocked == ("generate", "vLLM generates")
    penalised = copy.deepcopy(model)
    penalised.generation_config.no_repeat_ngram_size = 3  # type: ignore[attr-defined]
    decoder, why = choose_decoder(penalised, "incremental")
    assert decoder == "generate" and "no_repeat_ngram_size" in str(why)
    cfg = GenerationConfig(max_new_tokens=4, show_progress=False)
    assert HFGenerator(penalised, tokenizer, cfg).decoder == "generate"
    assert HFGenerator(model, tokenizer, cfg).decoder == "incremental"
