"""The incremental decoder against transformers' ``generate`` on a tiny random Llama."""

from __future__ import annotations

import pytest

from sqlgrpo.generation import GenerationConfig, HFGenerator, generate
from sqlgrpo.generation.decoding import (
    DecodeSettings,
    common_prefix_length,
    decode,
    unsupported_reason,
)
from sqlgrpo.models import eos_token_ids

QUESTIONS = [
    "How many rows?",
    "List every vessel name that docked in Rotterdam after 2020, ordered by tonnage descending.",
    "Total sales?",
    "Which customers placed more than three orders in the last quarter and live in Canada?",
    "Average age of employees per department, only departments with at least five people.",
    "Name the cheapest product.",
]
SYSTEM = "You convert questions into SQL. Answer inside <reasoning> and <sql> tags."


def _rows(tokenizer: object) -> list[list[int]]:
    texts = [
        tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
            tokenize=False,
            add_generation_prompt=True,
        )
        + "<reasoning>\n"
        for q in QUESTIONS
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]  # type: ignore[operator]


def _reference(model: object, tokenizer: object, rows: list[list[int]], n: int, eos: int) -> list:
    """Left-padded ``generate``, cut after the first end token like the decoder's output."""
    import torch

    tokenizer.padding_side = "left"  # type: ignore[attr-defined]
    enc = tokenizer.pad({"input_ids": rows}, return_tensors="pt")  # type: ignore[attr-defined]
    with torch.inference_mode():
        out = model.generate(  # type: ignore[attr-defined]
            **enc,
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        )
    result = []
    for seq in out[:, enc["input_ids"].shape[1] :].tolist():
        result.append(seq[: seq.index(eos) + 1] if eos in seq else seq)
    return result


def test_common_prefix_leaves_every_row_a_token() -> None:
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix_length([[7, 1], [8, 1]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 0


@pytest.mark.parametrize("prefill_rows", [1, 4, 16])
def test_greedy_matches_generate(tiny: tuple[object, object], prefill_rows: int) -> None:
    model, tokenizer = tiny
    rows = _rows(tokenizer)
    assert common_prefix_length(rows) > 20, "the system prompt should be a shared prefix"
    assert len({len(r) for r in rows}) > 1, "prompts must differ in length"
    eos = tokenizer.eos_token_id  # type: ignore[attr-defined]
    settings = DecodeSettings(
        max_new_tokens=12, eos_token_ids=frozenset([eos]), prefill_rows=prefill_rows
    )
    ours = decode(model, rows, settings)
    assert ours == _reference(model, tokenizer, rows, 12, eos)
    assert all(len(o) == 12 for o in ours), "the random model should not stop on its own"


def test_rows_that_end_leave_the_batch(tiny: tuple[object, object]) -> None:
    """Declare as end token one the model emits early in some rows and late or never in others."""
    model, tokenizer = tiny
    rows = _rows(tokenizer)
    free = decode(model, rows, DecodeSettings(max_new_tokens=16, eos_token_ids=frozenset()))
    counts: dict[int, int] = {}
    for seq in free:
        for t in set(seq[:12]):
            counts[t] = counts.get(t, 0) + 1
    # a token some rows emit and others do not: those rows stop at different steps
    stop = next(t for t, c in sorted(counts.items(), key=lambda kv: -kv[1]) if 0 < c < len(rows))
    settings = DecodeSettings(max_new_tokens=16, eos_token_ids=frozenset([stop]), prefill_rows=4)
    ours = decode(model, rows, settings)
    assert ours == _reference(model, tokenizer, rows, 16, stop)
    ended = [seq for seq in ours if seq[-1] == stop]
    assert ended and len(ended) < len(rows)
    assert {len(s) for s in ours} != {16}


def test_generator_decoders_agree_and_sampling_is_seeded(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    texts = [tokenizer.decode(r) for r in _rows(tokenizer)]  # type: ignore[attr-defined]
    greedy = {
        d: generate(
            HFGenerator(
                model, tokenizer, GenerationConfig(max_new_tokens=10, batch_size=4, decoder=d)
            ),
            texts,
        )
        for d in ("incremental", "generate")
    }
    assert greedy["incremental"] == greedy["generate"]
    cfg = GenerationConfig(
        max_new_tokens=8, batch_size=3, temperature=1.0, top_p=0.9, num_samples=3, seed=3
    )
    first = generate(HFGenerator(model, tokenizer, cfg), texts[:3])
    again = generate(HFGenerator(model, tokenizer, cfg), texts[:3])
    assert first == again
    assert [len(c) for c in first] == [3, 3, 3]
    assert len({t for c in first for t in c}) > 3, "samples of one prompt should differ"


def test_models_with_extra_logits_processors_use_generate(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    assert unsupported_reason(model) is None
    assert eos_token_ids(model, tokenizer) == {tokenizer.eos_token_id}  # type: ignore[attr-defined]
    old = model.generation_config.repetition_penalty  # type: ignore[attr-defined]
    model.generation_config.repetition_penalty = 1.3  # type: ignore[attr-defined]
    try:
        assert "repetition_penalty" in (unsupported_reason(model) or "")
        gen = HFGenerator(model, tokenizer, GenerationConfig(max_new_tokens=4))
        assert gen.decoder == "generate"
    finally:
        model.generation_config.repetition_penalty = old  # type: ignore[attr-defined]


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        DecodeSettings(max_new_tokens=0, eos_token_ids=frozenset())
    with pytest.raises(ValueError, match="prefill_rows"):
        DecodeSettings(max_new_tokens=1, eos_token_ids=frozenset(), prefill_rows=0)
    with pytest.raises(ValueError, match="decoder"):
        GenerationConfig(decoder="beam")


def test_repeated_prompts_are_prefilled_once(tiny: tuple[object, object], monkeypatch) -> None:
    """A GRPO batch (each prompt k times in a row) decodes like the rows given one by one."""
    import sqlgrpo.generation.decoding as decoding

    model, tokenizer = tiny
    rows = _rows(tokenizer)[:3]
    grouped = [r for r in rows for _ in range(4)]
    settings = DecodeSettings(max_new_tokens=10, eos_token_ids=frozenset())
    seen: list[int] = []
    real_prefill = decoding._prefill
    monkeypatch.setattr(
        decoding,
        "_prefill",
        lambda m, rs, st, arg: seen.append(len(rs)) or real_prefill(m, rs, st, arg),
    )
    out = decoding.decode_repeated(model, grouped, settings)
    assert seen == [3], "three distinct prompts prefilled once each"
    assert out == [o for o in decode(model, rows, settings) for _ in range(4)]
    ragged = grouped[:-1]  # runs of 4, 4 and 3: decoded as given
    assert decoding.decode_repeated(model, ragged, settings) == out[:-1]
    assert seen[-1] == len(ragged)


def test_roomy_cache_layers_hold_what_dynamic_layers_hold(tiny: tuple[object, object]) -> None:
    """In-place writes into reserved room (and growth past it) keep the same keys and values."""
    import copy

    import torch

    from sqlgrpo.generation.kv_cache import RoomyLayer, reserve_room

    model, tokenizer = tiny
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([_rows(tokenizer)[0]]), use_cache=True)  # type: ignore[operator]
    plain = out.past_key_values if getattr(out, "cache", None) is None else out.cache
    roomy = copy.deepcopy(plain)
    assert reserve_room(roomy, 2)
    assert all(isinstance(layer, RoomyLayer) for layer in roomy.layers)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # the third update runs past the room
        for i, layer in enumerate(plain.layers):
            k = torch.randn(layer.keys.shape[:2] + (1, layer.keys.shape[-1]), generator=generator)
            v = torch.randn(k.shape, generator=generator)
            expected = layer.update(k, v)
            got = roomy.layers[i].update(k, v)
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    roomy.batch_repeat_interleave(2)
    roomy.batch_select_indices(torch.tensor([1]))
    assert torch.equal(roomy.layers[0].keys, plain.layers[0].keys)
    assert roomy.get_seq_length() == plain.get_seq_length()


def test_sampling_follows_the_warped_distribution() -> None:
    """One uniform draw per row through the CDF: only top-k tokens, at their probabilities."""
    import torch

    from sqlgrpo.generation.decoding import logits_warpers, pick_tokens

    settings = DecodeSettings(max_new_tokens=1, eos_token_ids=frozenset(), temperature=0.7, top_k=3)
    logits = torch.tensor([[2.0, 0.5, 1.5, -1.0, 1.0, -9.0]]).repeat(20_000, 1)
    picks = pick_tokens(
        logits, settings, torch.Generator().manual_seed(0), logits_warpers(settings)
    )
    counts = torch.bincount(picks, minlength=6).double()
    assert set(torch.nonzero(counts).squeeze(1).tolist()) == {0, 2, 4}
    top = torch.tensor([2.0, 1.5, 1.0]) / 0.7
    expected = torch.softmax(top.double(), dim=0) * 20_000
    sd = (expected * (1 - expected / 20_000)).sqrt()
    assert bool(((counts[[0, 2, 4]] - expected).abs() < 5 * sd).all())
