"""The SFT warm-up explainer on real gold SQL, and the targets it builds."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from sqlgrpo.rewards import FormatReward, ReasoningReward
from sqlgrpo.training.config import ConfigError, parse_run_config
from sqlgrpo.training.warmup import explain_sql, schema_tables, warmup_model_args, warmup_target

CPU_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-cpu.yaml"
CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", re.I)


def _gretel_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _gold_tables(row: dict) -> list[str]:
    """Tables of the sample's schema that its gold SQL mentions as a word (an independent oracle)."""
    names = CREATE_TABLE.findall(row["sql_context"])
    return [n for n in names if re.search(rf"\b{re.escape(n)}\b", row["sql"], re.I)]


@pytest.mark.parametrize("style", ["full", "concise"])
def test_explanations_name_the_gold_tables(gretel_train_path: Path, style: str) -> None:
    rows = _gretel_rows(gretel_train_path)
    assert len(rows) > 100
    missing = []
    for i, row in enumerate(rows):
        text = explain_sql(row["sql"], row["sql_context"], style)
        for table in _gold_tables(row):
            if table.lower() not in text.lower():
                missing.append((i, table))
    assert missing == [], f"{len(missing)} table(s) not named, first: {missing[:5]}"


@pytest.mark.parametrize("style", ["full", "concise"])
def test_explanations_have_step_markers_and_score_on_reasoning(
    gretel_train_path: Path, style: str
) -> None:
    rows = _gretel_rows(gretel_train_path)[:200]
    reasoning = ReasoningReward()
    fmt = FormatReward()
    scores = []
    for row in rows:
        text = explain_sql(row["sql"], row["sql_context"], style)
        lines = text.splitlines()
        assert lines[0].startswith("First,") and lines[-1].startswith("Finally,"), text
        assert len(lines) >= 2
        if style == "concise":
            assert len(lines) <= 3 and (len(lines) == 2 or lines[1].startswith("Then,")), text
        target = warmup_target(row["sql"], row["sql_context"], style=style)
        kwargs = {"sql": [row["sql"]], "sql_context": [row["sql_context"]], "db_path": [None]}
        assert fmt(prompts=[""], completions=[target], **kwargs) == [pytest.approx(fmt.weight)]
        scores.append(reasoning(prompts=[""], completions=[target], **kwargs)[0])
    # step markers + schema names + structure: well above half of the reward's weight
    mean = sum(scores) / len(scores)
    assert mean >= 0.6 * ReasoningReward().weight, mean


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a.x FROM a JOIN b ON a.id = b.id", ["join b on a.id = b.id"]),
        ("SELECT dept, COUNT(*) FROM staff GROUP BY dept HAVING COUNT(*) > 2",
         ["group the rows by dept", "count(*)", "groups where count(*) > 2"]),
        ("SELECT name FROM rivers ORDER BY length DESC LIMIT 3",
         ["order the result by length descending", "first 3 row"]),
        ("INSERT INTO t (a) VALUES (1)", ["insert the new row(s) into t"]),
        ("UPDATE books SET price = price * 1.1 WHERE author = 'Rowe'",
         ["update books", "author = 'rowe'"]),
        ("DELETE FROM sensors WHERE readings = 0", ["delete the matching rows from sensors"]),
        ("SELECT a FROM t1 UNION SELECT a FROM t2", ["union"]),
        ("WITH top AS (SELECT * FROM t) SELECT * FROM top", ["with clause defines top"]),
    ],
)  # fmt: skip
def test_explainer_covers_clauses(sql: str, expected: list[str]) -> None:
    text = explain_sql(sql).lower()
    for fragment in expected:
        assert fragment in text, text


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a.x FROM a JOIN b ON a.id = b.id", ["join b", "return a.x"]),
        ("SELECT dept, COUNT(*) FROM staff GROUP BY dept HAVING COUNT(*) > 2",
         ["group by dept", "aggregate with count", "having"]),
        ("SELECT name FROM rivers WHERE length > 5 ORDER BY length DESC LIMIT 3",
         ["filter on length", "order by length descending", "keep 3 row"]),
        ("INSERT INTO t (a) VALUES (1)", ["insert into t"]),
        ("UPDATE books SET price = price * 1.1 WHERE author = 'Rowe'",
         ["filter on author", "update books, setting price"]),
        ("DELETE FROM sensors WHERE readings = 0", ["delete the matching rows from sensors"]),
        ("SELECT a FROM t1 UNION SELECT a FROM t2", ["combine two queries with union"]),
        ("WITH top AS (SELECT * FROM t) SELECT * FROM top", ["define top in a with clause"]),
    ],
)  # fmt: skip
def test_concise_explainer_covers_clauses(sql: str, expected: list[str]) -> None:
    text = explain_sql(sql, style="concise").lower()
    for fragment in expected:
        assert fragment in text, text


def test_concise_is_shorter_and_unknown_styles_fail(gretel_train_path: Path) -> None:
    rows = _gretel_rows(gretel_train_path)[:200]
    full = sum(len(explain_sql(r["sql"], r["sql_context"])) for r in rows)
    concise = sum(len(explain_sql(r["sql"], r["sql_context"], "concise")) for r in rows)
    assert concise < 0.8 * full, (concise, full)
    with pytest.raises(ValueError, match="unknown explanation style"):
        explain_sql("SELECT 1", style="verbose")


def test_unparseable_sql_still_gets_an_explanation() -> None:
    schema = "CREATE TABLE orders (id INT, total REAL);"
    text = explain_sql("SELEC total FRM orders WHERE", schema)
    assert text.startswith("First,") and "orders" in text and "Finally," in text


def test_schema_tables_reads_create_statements() -> None:
    schema = (
        "CREATE TABLE a (x INT, y TEXT); CREATE TABLE b (z REAL); INSERT INTO a VALUES (1, 'q');"
    )
    assert schema_tables(schema) == {"a": ["x", "y"], "b": ["z"]}


def test_warmup_target_with_prefill() -> None:
    full = warmup_target("SELECT 1")
    assert full.startswith("<reasoning>\n") and full.endswith("<sql>\nSELECT 1\n</sql>")
    assert "<reasoning>\n" + warmup_target("SELECT 1", prefill="<reasoning>\n") == full
    with pytest.raises(ValueError, match="not the start"):
        warmup_target("SELECT 1", prefill="<think>")


@pytest.mark.parametrize(
    ("args", "warmup_lora"),
    [
        ([], False),
        (["--use_peft", "true"], True),
        (["--use_peft", "true", "--sft_warmup_full_finetune", "true"], False),
        (["--sft_warmup_full_finetune", "true"], False),
    ],
)
def test_warmup_trains_what_grpo_trains_unless_told_full(
    args: list[str], warmup_lora: bool
) -> None:
    cfg = parse_run_config(["--config", str(CPU_RECIPE), *args])
    assert warmup_model_args(cfg).use_peft is warmup_lora
    assert cfg.model.use_peft is ("--use_peft" in args)  # GRPO's own setting is untouched


@pytest.mark.parametrize(
    "adapters_only", [["--use_peft", "true", "--load_in_4bit", "true"], ["--use_unsloth", "true"]]
)
def test_full_finetune_warmup_refuses_adapter_only_models(adapters_only: list[str]) -> None:
    cfg = parse_run_config(
        ["--config", str(CPU_RECIPE), *adapters_only, "--sft_warmup_full_finetune", "true"]
    )
    with pytest.raises(ConfigError, match="full-precision"):
        warmup_model_args(cfg)


def test_padding_free_batches_give_the_padded_loss_and_gradients(tiny, tmp_path: Path) -> None:
    """sft_warmup_padding_free relies on the attention keeping flattened samples apart:
    on real warm-up samples of uneven length, loss and gradients match the padded batch."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from sqlgrpo.data import PromptConfig, load_samples
    from sqlgrpo.training.warmup import warmup_dataset

    model, tokenizer = tiny
    samples = load_samples("bundled", split="train", limit=4).samples
    dataset = warmup_dataset(samples, PromptConfig(prefill="<reasoning>\n"), tokenizer, "concise")
    results = {}
    for padding_free in (False, True):
        args = SFTConfig(
            output_dir=str(tmp_path / str(padding_free)), completion_only_loss=True,
            max_length=None, padding_free=padding_free, use_cpu=True, report_to=[],
        )  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(samples))])
        lengths = [len(trainer.train_dataset[i]["input_ids"]) for i in range(len(samples))]
        assert len(set(lengths)) > 1  # uneven: the padded batch really pads
        assert ("attention_mask" in batch) is not padding_free
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[padding_free] = (loss.item(), grads)
    model.zero_grad()
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-5)
    assert torch.allclose(results[True][1], results[False][1], atol=1e-6, rtol=1e-4)


def test_warmup_rows_tokenize_as_inference_does_with_a_bos_adding_tokenizer(
    tiny, tmp_path: Path
) -> None:
    """A template that writes the BOS (Gemma's) with a tokenizer that adds one too: TRL
    tokenizes the warm-up text with special tokens, so the row must not start with two BOS;
    the trained ids are the ids inference feeds (rendered prompt, no special tokens added)."""
    from trl import SFTConfig, SFTTrainer

    from sqlgrpo.data import PromptConfig, load_samples, render_sample_prompt
    from sqlgrpo.models.aliases import GEMMA_TURN_TEMPLATE
    from sqlgrpo.training.warmup import warmup_dataset

    model, base_tokenizer = tiny
    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.add_bos_token = True
    tokenizer.chat_template = GEMMA_TURN_TEMPLATE
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id
    samples = load_samples("bundled", split="train", limit=2).samples
    cfg = PromptConfig(prefill="<reasoning>\n")
    dataset = warmup_dataset(samples, cfg, tokenizer, "concise")
    args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=None,
                     use_cpu=True, report_to=[])  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    for i, sample in enumerate(samples):
        row = trainer.train_dataset[i]
        prompt_ids = tokenizer(
            render_sample_prompt(sample, cfg, tokenizer), add_special_tokens=False
        )["input_ids"]
        assert prompt_ids[0] == tokenizer.bos_token_id and prompt_ids[1] != tokenizer.bos_token_id
        assert row["input_ids"][: len(prompt_ids)] == prompt_ids
        first_trained = next(i for i, label in enumerate(row["labels"]) if label != -100)
        assert first_trained == len(prompt_ids)  # the loss starts where the completion does
