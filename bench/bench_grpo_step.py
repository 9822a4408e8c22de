"""A GRPO step: TRL's stock ``GRPOTrainer`` against sqlgrpo's, side by side in one process.

The trainers (``--sides``: stock, sqlgrpo with its exact torch sampler, and sqlgrpo with the
opt-in llama.cpp sampler) get the same model (loaded fresh for each), prompts, rewards (the
spec's four), seed and ``GRPOConfig``; each trains ``--warmup + --steps`` steps and the first
``--warmup`` are dropped (the llama.cpp side builds its GGUF mirror in its first step).
sqlgrpo's zero-variance skip is off here, so every side always runs the loss. Per step the
bench times, on the trainer instances:

- sampling: ``_generate_single_turn`` (for llama.cpp, the mirror's refresh included);
- rewards: ``_calculate_rewards``;
- loss forward + backward: ``training_step`` minus ``_prepare_inputs`` (sampling, rewards,
  advantages);
- optimizer: between the ``on_pre_optimizer_step`` and ``on_optimizer_step`` callbacks.

Cases: ``recipe`` (the CPU recipe's shape: 1 prompt x G completions of <= 128 tokens from
the base model, bundled prompts), ``spider`` (the same on ~1,000-token Spider prompts) and
``loss`` (one forward + backward of a group, TRL's per-row pass against the shared-prefix
pass and the floor of one prompt + G completions, for a ~1,000-token Spider prompt and a
~2,000-token one, the size of a BIRD schema). Results accumulate in ``--results`` (JSON), so
the cases can run as separate locked commands; the section is written from all of them.

    python bench/bench_grpo_step.py --cases recipe --steps 3
    python bench/bench_grpo_step.py --cases spider,loss --steps 2

Writes its section of BENCHMARKS.md between the bench_grpo_step markers.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from benchmarks_md import write_section
from sqlgrpo.models.precision import cpu_bf16_flags, cpu_model_name

SPIDER = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "spider_train_subset"
PREFILL = "<reasoning>\n"
# trainer name -> (label, SqlGrpoTrainer's rollout_sampler; None: TRL's stock GRPOTrainer,
# bf16: TRL's bf16 flag, i.e. accelerate's CPU autocast; sqlgrpo then samples from a bf16 copy)
SIDES = {
    "stock": ("stock", None, False),
    "stock-bf16": ("stock bf16 (TRL's CPU default)", None, True),
    "sqlgrpo": ("sqlgrpo fp32", "torch", False),
    "sqlgrpo-bf16": ("sqlgrpo bf16", "torch", True),
    "llama-cpp": ("sqlgrpo, llama.cpp sampler (opt-in)", "llama-cpp", False),
}
MISMATCH = "sampling/sampling_logp_difference/mean"


class StepClock(TrainerCallback):
    """Wall time of each step and of its optimizer step; the logged completion lengths."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.optimizer: list[float] = []
        self.lengths: list[float] = []
        self.mismatch: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._step = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._opt = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer.append(time.perf_counter() - self._opt)

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.lengths.append(float(logs["completions/mean_length"]))
        if logs and MISMATCH in logs:
            self.mismatch.append(float(logs[MISMATCH]))


def _timed(trainer: Any, name: str, record: dict[str, list[float]]) -> None:
    """Replace ``trainer.<name>`` by a wrapper that appends each call's seconds."""
    original = getattr(trainer, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record[name].append(time.perf_counter() - started)

    setattr(trainer, name, wrapper)


def _model(path: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqlgrpo.models import prepare_tokenizer

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.pad_token_id = model.config.pad_token_id or tokenizer.pad_token_id
    return model, tokenizer


def _prompt_tokens(sample: Any, prompt: Any, tokenizer: Any) -> int:
    from sqlgrpo.data import trainer_prompt as prompt_column

    return len(tokenizer(prompt_column(sample, prompt, tokenizer))["input_ids"])


def _samples(case: str, tokenizer: Any, prompt: Any) -> list[Any]:
    from sqlgrpo.data import load_samples

    if case == "recipe":
        return list(load_samples("bundled", split="train").samples)
    if not (SPIDER / "train.json").is_file():
        raise SystemExit(f"the spider case needs the Spider subset at {SPIDER}")
    samples = load_samples(str(SPIDER), split="train").samples
    return [s for s in samples if 900 <= _prompt_tokens(s, prompt, tokenizer) <= 1100]


def _config(
    out: Path, steps: int, generations: int, max_tokens: int, seed: int, bf16: bool = False
) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=False,  # the CPU recipe's setting (GRPOConfig defaults to True)
        per_device_train_batch_size=generations,
        num_generations=generations,
        gradient_accumulation_steps=1,
        max_completion_length=max_tokens,
        temperature=0.9,
        beta=0.0,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
    )


def run_steps(case: str, side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``warmup + steps`` steps with one trainer; per-step times past the warm-up."""
    from trl import GRPOTrainer

    from sqlgrpo.data import PromptConfig
    from sqlgrpo.training.config import SqlGrpoArguments
    from sqlgrpo.training.train import build_dataset, build_rewards
    from sqlgrpo.training.trainer import SqlGrpoTrainer

    model, tokenizer = _model(args.model_path)
    prompt = PromptConfig(prefill=PREFILL)
    samples = _samples(case, tokenizer, prompt)
    dataset = build_dataset(samples, prompt, tokenizer)
    rewards = build_rewards(SqlGrpoArguments(), PREFILL)
    clock = StepClock()
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        _, sampler, bf16 = SIDES[side]
        config = _config(Path(tmp), total, args.generations, args.max_tokens, args.seed, bf16)
        common = dict(
            model=model, reward_funcs=rewards, args=config, train_dataset=dataset,
            processing_class=tokenizer, callbacks=[clock],
        )  # fmt: skip
        if sampler is None:
            trainer = GRPOTrainer(**common)
        else:
            trainer = SqlGrpoTrainer(
                **common, prefill=PREFILL, skip_zero_variance=False, rollout_sampler=sampler
            )
        record: dict[str, list[float]] = defaultdict(list)
        for name in ("_generate_single_turn", "_calculate_rewards", "_prepare_inputs"):
            _timed(trainer, name, record)
        _timed(trainer, "training_step", record)
        trainer.train()
    keep = slice(args.warmup, total)
    steps = clock.steps[keep]
    loss = [t - p for t, p in zip(record["training_step"], record["_prepare_inputs"], strict=True)]
    result = {
        "step": steps,
        "sampling": record["_generate_single_turn"][keep],
        "rewards": record["_calculate_rewards"][keep],
        "loss": loss[keep],
        "optimizer": clock.optimizer[keep],
        "length": clock.lengths[keep],
        "mismatch": clock.mismatch[keep],
        "prompt_tokens": statistics.mean(_prompt_tokens(s, prompt, tokenizer) for s in samples),
    }
    del trainer, model
    gc.collect()
    return result


def run_loss(args: argparse.Namespace) -> dict[str, Any]:
    """One forward + backward of a group: TRL's pass, the shared-prefix pass, and the floor."""
    import torch
    from datasets import Dataset
    from trl import GRPOTrainer

    from sqlgrpo.data import PromptConfig, load_samples
    from sqlgrpo.data import trainer_prompt as prompt_column
    from sqlgrpo.training.trainer import SqlGrpoTrainer

    model, tokenizer = _model(args.model_path)
    prompt = PromptConfig(prefill=PREFILL)
    samples = load_samples(str(SPIDER), split="train").samples
    lengths = {s.id: _prompt_tokens(s, prompt, tokenizer) for s in samples}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SqlGrpoTrainer(
            model=model,
            reward_funcs=build_rewards_for_loss(),
            args=_config(Path(tmp), 1, args.generations, args.max_tokens, args.seed),
            train_dataset=Dataset.from_list([{"prompt": "x"}]),
            processing_class=tokenizer,
            skip_zero_variance=False,
        )
    trainer.current_gradient_accumulation_steps = 1
    model = trainer.model
    model.train()
    g, c = args.generations, args.max_tokens
    generator = torch.Generator().manual_seed(args.seed)

    def timed(fn) -> float:
        model.zero_grad(set_to_none=True)
        started = time.perf_counter()
        fn().backward()
        return time.perf_counter() - started

    def group_loss(ids: torch.Tensor, shared: bool):
        trainer.shared_prefix_loss = shared
        completion = torch.randint(0, len(tokenizer), (g, c), generator=generator)
        inputs = {
            "prompt_ids": ids.repeat(g, 1),
            "prompt_mask": torch.ones((g, ids.shape[1]), dtype=torch.long),
            "completion_ids": completion,
            "completion_mask": torch.ones((g, c), dtype=torch.long),
            "advantages": torch.randn(g, generator=generator),
            "num_items_in_batch": torch.tensor(g * c),
        }
        return trainer.compute_loss(model, inputs)

    def floor(ids: torch.Tensor):
        """The prompt alone (one row) plus the G completions alone, each through TRL's pass."""
        prompt_out = model(input_ids=ids, logits_to_keep=1)  # backbone, LM head on one position
        completion = torch.randint(0, len(tokenizer), (g, c + 1), generator=generator)
        per_row = GRPOTrainer._get_per_token_logps_and_entropies
        logps, _, _ = per_row(trainer, model, completion, torch.ones_like(completion), c)
        return prompt_out.logits.sum() + logps.sum()

    rows = []
    warm = torch.randint(0, len(tokenizer), (1, 32), generator=generator)
    timed(lambda: group_loss(warm, True))
    timed(lambda: group_loss(warm, False))
    labels = {1000: "Spider", 2000: "BIRD-size (Spider's largest schema)"}
    for target in args.loss_prompts:
        label = labels.get(target, f"~{target} tokens")
        sample = min(samples, key=lambda s: abs(lengths[s.id] - target))
        text = prompt_column(sample, prompt, tokenizer)
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        times: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            times["trl"].append(timed(lambda ids=ids: group_loss(ids, False)))
            times["shared"].append(timed(lambda ids=ids: group_loss(ids, True)))
            times["floor"].append(timed(lambda ids=ids: floor(ids)))
        rows.append(
            {
                "label": label,
                "sample": sample.id,
                "prompt_tokens": int(ids.shape[1]),
                "generations": g,
                **{k: statistics.median(v) for k, v in times.items()},
            }
        )
        print(rows[-1], flush=True)
    return {"rows": rows, "generations": g, "completion_tokens": c, "rounds": args.rounds}


def build_rewards_for_loss() -> list[Any]:
    from sqlgrpo.training.config import SqlGrpoArguments
    from sqlgrpo.training.train import build_rewards

    return build_rewards(SqlGrpoArguments(), PREFILL)


def torch_version() -> str:
    import torch

    return torch.__version__


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _step_table(case: str, result: dict[str, Any]) -> list[str]:
    lines = [
        "| trainer | step | sampling | rewards | loss fwd+bwd | optimizer | "
        "completion tokens | tokens/s | prompt tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sides = [side for side in SIDES if side in result]
    for side in sides:
        r = result[side]
        step = _median(r["step"])
        length = statistics.mean(r["length"]) if r["length"] else float("nan")
        per_step = length * result["generations"]
        lines.append(
            f"| {SIDES[side][0]} | {step:.1f} | {_median(r['sampling']):.1f} | {_median(r['rewards']):.2f} "
            f"| {_median(r['loss']):.1f} | {_median(r['optimizer']):.2f} | {length:.0f} | "
            f"{per_step / step:.1f} | {r['prompt_tokens']:.0f} |"
        )
    lines.append("")
    for side in sides:
        for base in ("stock", "stock-bf16"):
            if base in result and side != base and not side.startswith("stock"):
                ratio = _median(result[base]["step"]) / _median(result[side]["step"])
                lines.append(f"Median step, {SIDES[base][0]} / {SIDES[side][0]}: **{ratio:.2f}x**.")
        if result[side].get("mismatch"):
            lines.append(
                f"Sampler mismatch ({SIDES[side][0]}): mean |learner - sampler| log-prob "
                f"{statistics.mean(result[side]['mismatch']):.1e} nats a token (the sampling "
                "column includes the refresh of the sampler's copy after each optimizer step)."
            )
    return lines


def render(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section from every case in ``results``."""
    parts = []
    meta = results.get("meta", {})
    cases = [results[c] for c in ("recipe", "spider") if c in results]
    if cases:
        parts.append(
            f"TRL's stock `GRPOTrainer` and sqlgrpo's `SqlGrpoTrainer` (exact torch sampler, and "
            f"the opt-in llama.cpp sampler where measured), one after the other in one process, from `{meta.get('model')}` (fp32 master weights, bf16 sides under CPU autocast, full fine-tuning, 1 prompt x "
            f"{cases[0]['generations']} completions of <= {meta.get('max_tokens')} tokens, "
            "temperature 0.9, no gradient checkpointing, the spec's four rewards, seed 42, the same "
            "prompts). Medians over the steps after the warm-up step(s); seconds. "
            "Tokens/s: sampled completion tokens per second of step."
        )
    for case, title in (("recipe", "Bundled prompts (the CPU recipe's shape)"),
                        ("spider", "Spider prompts of 900-1,100 tokens")):  # fmt: skip
        if case in results:
            r = results[case]
            parts += [
                "",
                f"**{title}** ({r.get('steps', '?')} steps after {r.get('warmup', '?')} warm-up)",
                "",
            ]
            parts += _step_table(case, r)
    if "loss" in results:
        loss = results["loss"]
        parts += [
            "",
            f"**Loss forward + backward of one group** (G completions of "
            f"{loss['completion_tokens']} tokens, median of {loss['rounds']}; seconds). TRL: its "
            "per-row pass (G copies of the prompt); shared: `shared_prefix_loss`; floor: the "
            "prompt alone (1 row) plus the G completions alone.",
            "",
            "| prompt | tokens | G | TRL | shared | floor | TRL / shared | shared / floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in loss["rows"]:
            parts.append(
                f"| {row['label']} (`{row['sample']}`) | {row['prompt_tokens']} | "
                f"{row.get('generations', loss['generations'])} | "
                f"{row['trl']:.1f} | {row['shared']:.1f} | {row['floor']:.1f} | "
                f"**{row['trl'] / row['shared']:.2f}x** | {row['shared'] / row['floor']:.2f} |"
            )
    if meta.get("cpu"):
        flags = ", ".join(meta.get("cpu_bf16_flags") or []) or "none"
        parts += [
            "",
            f"CPU: {meta['cpu']}; bf16 matrix-unit flags: {flags}; torch {meta.get('torch')}.",
        ]
    if meta.get("commands"):
        parts += ["", "Commands: " + "; ".join(f"`{c}`" for c in meta["commands"])]
    if meta.get("note"):
        parts += ["", meta["note"]]
    return "\n".join(parts)


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="alias or folder")
    parser.add_argument("--cases", default="recipe,spider,loss")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="steps dropped before measuring")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=1, help="repeats of the loss case")
    parser.add_argument(
        "--loss-prompts",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1000, 2000],
        help="prompt sizes (tokens) of the loss case; each row replaces an earlier one",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"trainers of the step cases, stock first (default: all of {', '.join(SIDES)})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_grpo_step.json",
        help="JSON the cases accumulate in (the section is written from all of it)",
    )
    parser.add_argument("--note", default="", help="a sentence for the section (conditions)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sqlgrpo").setLevel(logging.INFO)  # e.g. why a fast path is not taken

    from sqlgrpo.models import resolve_model_path

    args.model_path = resolve_model_path(args.model)
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for case in args.cases.split(","):
        if case == "loss":
            loss = run_loss(args)
            earlier = results.get("loss", {}).get("rows", [])
            kept = [r for r in earlier if r["label"] not in {n["label"] for n in loss["rows"]}]
            loss["rows"] = sorted(kept + loss["rows"], key=lambda r: r["prompt_tokens"])
            results["loss"] = loss
            gc.collect()
        else:
            results[case] = {"generations": args.generations, "steps": args.steps,
                             "warmup": args.warmup}  # fmt: skip
            for side in args.sides.split(","):
                results[case][side] = run_steps(case, side, args)
                print(case, side, results[case][side], flush=True)
        meta = results.setdefault("meta", {"commands": []})
        meta.update(model=args.model, generations=args.generations, max_tokens=args.max_tokens)
        meta.update(cpu=cpu_model_name(), cpu_bf16_flags=cpu_bf16_flags(), torch=torch_version())
        if args.note:
            meta["note"] = args.note
        args.results.write_text(json.dumps(results, indent=1))
    command = "python bench/bench_grpo_step.py " + " ".join(sys.argv[1:])
    meta = results["meta"]
    if command not in meta["commands"]:
        meta["commands"].append(command)
    args.results.write_text(json.dumps(results, indent=1))
    text = render(results)
    print(text)
    if not args.no_write:
        write_section("bench_grpo_step", "GRPO step: stock TRL against sqlgrpo", text)


if __name__ == "__main__":
    main()
