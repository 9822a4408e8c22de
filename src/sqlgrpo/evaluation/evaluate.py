"""Execution-checked evaluation: generate, extract, execute against gold, aggregate.

``evaluate(cfg)`` writes ``OUT/predictions.jsonl`` (one record per example, appended
batch by batch so an interrupted run resumes from the ids already there) and
``OUT/metrics.json`` (see ``sqlgrpo.evaluation.metrics.aggregate`` and docs/evaluation.md).
With ``feedback.turns > 1`` a batch's answers whose SQL fails or returns no rows go back to the
model with the sandbox's reply (:mod:`sqlgrpo.generation.feedback`); each record keeps every
turn and the metrics report every turn, turn 1 being the single-turn evaluation.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlgrpo.data.sample import DataError, id_key
from sqlgrpo.evaluation.metrics import aggregate, read_records
from sqlgrpo.generation import GenerationConfig, Generator, make_generator
from sqlgrpo.generation.feedback import FeedbackConfig
from sqlgrpo.generation.voting import VOTE_METHODS, result_key, vote_record
from sqlgrpo.sql.bird_metrics import OFFICIAL_ITERATIONS
from sqlgrpo.sql.compare import COMPARE_RULES
from sqlgrpo.sql.engines.base import ENGINE_NAMES
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
SETTINGS_FILE = "eval_config.json"
#: Rows fetched per statement with bird_metrics (BIRD results can be large).
BIRD_MAX_ROWS = 1_000_000
# Settings that must agree between an interrupted run and its continuation.
_RESUME_KEYS = (
    "model",
    "data",
    "split",
    "limit",
    "seed",
    "ids_file",
    "compare_rule",
    "prefill",
    "one_shot",
    "system_prompt",
    "sample_rows",
    "reward_profile",
    "vote",
    "test_suite",
    "timeout_s",
    "bird_metrics",
    "rves_iterations",
    "engine",
    "feedback",
)
# Keys added later: a run recorded before them used these values.
_RESUME_DEFAULTS = {
    "vote": None,
    "test_suite": False,
    "timeout_s": DEFAULT_LIMITS.timeout_s,
    "bird_metrics": False,
    "rves_iterations": OFFICIAL_ITERATIONS,
    "engine": "sqlite",
    "feedback": asdict(FeedbackConfig()),
}


@dataclass
class EvalConfig:
    """One evaluation: which model on which data, how to prompt, generate and compare."""

    model: str = field(metadata={"help": "alias, hub id, model folder or training run folder"})
    data: str = field(metadata={"help": "any source sqlgrpo.data.load_samples accepts"})
    out_dir: str = field(default="eval", metadata={"help": "where predictions/metrics go"})
    split: str | None = field(default=None, metadata={"help": "data split (bundled: test)"})
    limit: int | None = field(default=None, metadata={"help": "evaluate N examples"})
    seed: int | None = field(
        default=None, metadata={"help": "with --limit: a seeded random sample (else the first N)"}
    )
    ids_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON list of sample ids to evaluate (e.g. a run's holdout_ids.json); "
            "applied before limit"
        },
    )
    compare_rule: str = field(
        default="seed", metadata={"help": " | ".join(COMPARE_RULES) + " (sqlgrpo.sql.compare)"}
    )
    prefill: str = field(default="", metadata={"help": "assistant-turn prefill, e.g. <reasoning>"})
    one_shot: bool = field(default=False, metadata={"help": "add the worked example"})
    system_prompt: str | None = field(default=None, metadata={"help": "override SPEC's prompt"})
    sample_rows: int = field(
        default=0, metadata={"help": "example rows per table in SQLite-file schemas"}
    )
    prompt_source: str | None = field(
        default=None, metadata={"help": "the run file the prompt settings came from (recorded)"}
    )
    reward_profile: str = field(default="spec", metadata={"help": "rewards scored per output"})
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    resume: bool = field(default=True, metadata={"help": "continue from predictions.jsonl"})
    vote: str | None = field(
        default=None,
        metadata={
            "help": "execution: self-consistency vote over the num_samples sampled answers; "
            "each record's own completion is then the greedy one (sqlgrpo.generation.voting)"
        },
    )
    test_suite: bool = field(
        default=False,
        metadata={"help": "a prediction must match on every *.sqlite in its database folder"},
    )
    timeout_s: float = field(
        default=DEFAULT_LIMITS.timeout_s,
        metadata={"help": "per-statement time limit (BIRD's official scripts use 30 s)"},
    )
    bird_metrics: bool = field(
        default=False, metadata={"help": "also BIRD Soft-F1 and R-VES (sqlgrpo.sql.bird_metrics)"}
    )
    rves_iterations: int = field(
        default=OFFICIAL_ITERATIONS, metadata={"help": "timed runs per correct answer for R-VES"}
    )
    engine: str = field(
        default="sqlite",
        metadata={
            "help": " | ".join(ENGINE_NAMES) + ": run gold and predictions on a copy of each "
            "database in this engine (gold transpiled from SQLite; the prompt names the engine)"
        },
    )
    engine_url: str | None = field(
        default=None,
        metadata={"help": "engine postgres: a database the samples are loaded into (written)"},
    )
    feedback: FeedbackConfig = field(
        default_factory=FeedbackConfig,
        metadata={"help": "execution feedback: turns per question (sqlgrpo.generation.feedback)"},
    )

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"engine must be one of {ENGINE_NAMES}, got {self.engine!r}")
        if self.engine == "postgres" and not self.engine_url:
            raise ValueError("engine postgres needs engine_url (a database to load samples into)")
        if self.compare_rule not in COMPARE_RULES:
            raise ValueError(
                f"compare_rule must be one of {COMPARE_RULES}, got {self.compare_rule!r}"
            )
        if self.vote is not None:
            if self.vote not in VOTE_METHODS:
                raise ValueError(f"vote must be one of {VOTE_METHODS}, got {self.vote!r}")
            if self.generation.num_samples < 2:
                raise ValueError("vote needs num_samples >= 2 (and temperature > 0)")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.rves_iterations < 1:
            raise ValueError(f"rves_iterations must be >= 1, got {self.rves_iterations}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.feedback.enabled and (self.vote or self.generation.num_samples > 1):
            raise ValueError(
                "turns > 1 (execution feedback) answers one conversation per question: "
                "use it with num_samples 1 and no vote"
            )

    def settings(self) -> dict[str, Any]:
        """JSON-safe settings (recorded in metrics.json and checked on resume; a password in
        ``engine_url`` is masked)."""
        settings = asdict(self)
        if self.engine_url:
            from sqlgrpo.sql.engines.base import mask_password

            settings["engine_url"] = mask_password(self.engine_url)
        return settings


@dataclass
class EvalResult:
    """What an evaluation produced."""

    metrics: dict[str, Any]
    out_dir: Path
    n_generated: int  # examples generated in this call (resumed ones excluded)
    n_resumed: int


def select_samples(samples: list[Any], limit: int | None, seed: int | None) -> list[Any]:
    """First ``limit`` samples, or a seeded random ``limit`` of them (kept in data order)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if seed is None:
        return list(samples[:limit])
    picked = sorted(random.Random(seed).sample(range(len(samples)), limit))
    return [samples[i] for i in picked]


def _load_samples(cfg: EvalConfig) -> list[Any]:
    from sqlgrpo.data import load_samples

    loader_limit = cfg.limit if cfg.seed is None and cfg.ids_file is None else None
    result = load_samples(cfg.data, split=cfg.split, limit=loader_limit)
    if result.skipped:
        logger.warning("%d rows skipped while loading %s", len(result.skipped), cfg.data)
    ids = [s.id for s in result.samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{cfg.data}: sample id {dup!r} occurs more than once; ids must be unique")
    samples = list(result.samples)
    if cfg.ids_file is not None:
        samples = _only_ids(samples, cfg.ids_file, cfg.data)
    return select_samples(samples, cfg.limit, cfg.seed)


def _only_ids(samples: list[Any], ids_file: str, data: str) -> list[Any]:
    """The samples whose ids ``ids_file`` lists (a JSON list), in data order; every listed
    id must exist in ``data``."""
    path = Path(ids_file)
    try:
        wanted = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{ids_file}: cannot read a JSON list of sample ids ({exc})") from exc
    if not isinstance(wanted, list):
        raise ValueError(f"{ids_file}: expected a JSON list of sample ids")
    try:
        wanted = [id_key(i) for i in wanted]  # 5 and "5" name the same sample
    except DataError as exc:
        raise ValueError(f"{ids_file}: {exc}") from None
    known = {s.id for s in samples}
    missing = [i for i in wanted if i not in known]
    if missing:
        raise ValueError(
            f"{ids_file}: {len(missing)} of {len(wanted)} id(s) are not in {data}, "
            f"first {missing[0]!r}"
        )
    keep = set(wanted)
    return [s for s in samples if s.id in keep]


def _check_resume(out: Path, cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    pred_path = out / PREDICTIONS_FILE
    if not cfg.resume or not pred_path.exists():
        pred_path.unlink(missing_ok=True)
        return {}
    settings_path = out / SETTINGS_FILE
    if settings_path.exists():
        old = json.loads(settings_path.read_text(encoding="utf-8"))
        old.setdefault("sample_rows", 0)  # written before sample_rows was recorded
        if isinstance(old.get("feedback"), dict):  # feedback keys added later: their defaults
            old["feedback"] = {**_RESUME_DEFAULTS["feedback"], **old["feedback"]}
        new = cfg.settings()
        diff = [k for k in _RESUME_KEYS if old.get(k, _RESUME_DEFAULTS.get(k)) != new.get(k)]
        old_gen, new_gen = old.get("generation", {}), new["generation"]
        diff += [
            f"generation.{k}"
            for k in ("max_new_tokens", "temperature", "top_p", "num_samples")
            if old_gen.get(k) != new_gen.get(k)
        ]
        if diff:
            raise ValueError(
                f"{out} holds predictions made with other settings ({', '.join(diff)}); "
                "use another --out or --no-resume"
            )
    return _read_resumable(pred_path)


def _read_resumable(path: Path) -> dict[str, dict[str, Any]]:
    """Records already written; a torn last line (killed mid-write) is dropped and rewritten."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[-1].strip():
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            logger.warning("%s: last line is incomplete (interrupted write); redoing it", path)
            path.write_text("".join(line + "\n" for line in lines[:-1]), encoding="utf-8")
    return read_records(path)


class Scorer:
    """Turns completions into prediction records: extraction, rewards, execution."""

    def __init__(self, cfg: EvalConfig) -> None:
        from sqlgrpo.rewards import build_profile
        from sqlgrpo.rewards.registry import share_checker
        from sqlgrpo.sql.execution import ExecutionChecker
        from sqlgrpo.sql.sandbox import SandboxLimits

        self.cfg = cfg
        self.prefill = cfg.prefill
        self.rewards = build_profile(cfg.reward_profile, prefill=cfg.prefill)
        # No deadline per batch: an evaluation's numbers must not depend on which other
        # predictions shared a batch (each statement keeps its own timeout).
        limits = SandboxLimits(timeout_s=cfg.timeout_s, batch_timeout_s=math.inf)
        if cfg.bird_metrics:  # BIRD's scripts compare whole results: fetch (nearly) all rows
            limits = replace(limits, max_rows=BIRD_MAX_ROWS)
        self.checker = ExecutionChecker.on_engine(
            cfg.engine,
            url=cfg.engine_url,
            rule=cfg.compare_rule,
            limits=limits,
            test_suite=cfg.test_suite,
        )
        share_checker(self.rewards, self.checker)  # each prediction runs once for the record
        if cfg.engine == "sqlite":  # the SQL workers load while the model generates
            from sqlgrpo.sql.worker import prestart

            prestart(limits)

    def _one(self, sample: Any, raw: str, *, bird: bool = False) -> dict[str, Any]:
        from sqlgrpo.rewards.format import soft_format_ok, strict_format_ok
        from sqlgrpo.sql.parsing import extract_reasoning, extract_sql, extract_sql_lenient

        sql = extract_sql(raw)
        lenient = extract_sql_lenient(raw)
        where = {"sql_context": sample.sql_context, "db_path": sample.db_path}
        outcome = self.checker.check(sql, sample.sql, **where)
        lenient_outcome = (
            outcome if lenient == sql else self.checker.check(lenient, sample.sql, **where)
        )
        error = outcome.error_class
        record = {
            "raw_output": raw,
            "sql": sql,
            "sql_lenient": lenient,
            "reasoning": extract_reasoning(raw),
            "format_ok": soft_format_ok(raw),
            "format_strict_ok": strict_format_ok(raw),
            "executed": outcome.executed,
            "executed_lenient": lenient_outcome.executed,
            "match": outcome.match,
            "match_lenient": lenient_outcome.match,
            "gold_kind": outcome.gold_kind,
            "error_class": getattr(error, "value", error),
            "execution": outcome.to_dict(),
            "result_key": result_key(outcome.pred),
        }
        if bird:
            record["bird"] = self._bird(sample, sql, outcome)
        return record

    def _bird(self, sample: Any, sql: str | None, outcome: Any) -> dict[str, Any] | None:
        """Soft-F1 and R-VES of the scored answer (None for a gold that is no query)."""
        from sqlgrpo.sql.bird_metrics import TimingConfig, rves_reward, soft_f1, time_ratio

        gold, pred = outcome.gold, outcome.pred
        if not gold.ok or gold.statement_type not in ("SELECT", "WITH"):
            return None
        pred_rows = pred.rows if pred is not None and pred.ok else None
        same_set = pred_rows is not None and set(pred_rows) == set(gold.rows)
        ratio = 0.0
        if same_set and sample.db_path and sql:
            timing = TimingConfig(iterations=self.cfg.rves_iterations, timeout_s=self.cfg.timeout_s)
            ratio = time_ratio(sql, sample.sql, sample.db_path, timing)
        return {
            "ex": same_set,
            "soft_f1": soft_f1(pred_rows, gold.rows),
            "time_ratio": ratio if sample.db_path else None,
            "rves_reward": rves_reward(ratio) if sample.db_path else None,
        }

    def feedback(
        self,
        samples: list[Any],
        prompts: list[str],
        completions: list[list[str]],
        generator: Generator,
        tokenizer: Any,
    ) -> list[list[Any]]:
        """Every sample's turns (:class:`sqlgrpo.generation.feedback.Turn`) from its first
        answer: an answer whose strictly extracted SQL fails, is missing or returns no rows
        goes back with the sandbox's reply, up to ``feedback.turns`` answers. Each answer runs
        as the scoring runs it (call inside :meth:`remember` so the scoring reuses the runs)."""
        from sqlgrpo.generation.feedback import generate_with_feedback
        from sqlgrpo.sql.parsing import extract_sql

        def execute(i: int, sql: str) -> Any:
            s = samples[i]
            return self.checker.check(sql, s.sql, sql_context=s.sql_context, db_path=s.db_path).pred

        return generate_with_feedback(
            generator,
            prompts,
            [texts[0] for texts in completions],
            self.cfg.feedback,
            tokenizer=tokenizer,
            extract=extract_sql,
            execute=execute,
            prefill=self.prefill,
        )

    def remember(self) -> Any:
        """A block inside which each prediction of a batch runs once (feedback and scoring)."""
        return self.checker.remember_outcomes()

    def score(
        self,
        samples: list[Any],
        prompts: list[str],
        completions: list[list[str]],
        sampled: list[list[str]] | None = None,
        turns: list[list[Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """One record per sample; the first completion is the scored one, all are kept
        (``sampled``, when given, are the samples instead, e.g. beside a greedy answer).
        With ``turns`` (execution feedback) the scored completion is each sample's last turn
        and the record keeps every turn with its execution and match."""
        if turns is not None:
            completions = [[conversation[-1].completion] for conversation in turns]
        with self.remember():
            records = self._score(samples, prompts, completions, sampled)
            if turns is not None:
                for sample, record, conversation in zip(samples, records, turns, strict=True):
                    record["turns"] = [self._turn(sample, t) for t in conversation]
            return records

    def _turn(self, sample: Any, turn: Any) -> dict[str, Any]:
        outcome = self.checker.check(
            turn.sql, sample.sql, sql_context=sample.sql_context, db_path=sample.db_path
        )
        return {**turn.to_dict(), "executed": outcome.executed, "match": outcome.match}

    def _score(
        self,
        samples: list[Any],
        prompts: list[str],
        completions: list[list[str]],
        sampled: list[list[str]] | None,
    ) -> list[dict[str, Any]]:
        firsts = [c[0] for c in completions]
        columns = {
            k: [s.reward_columns()[k] for s in samples]
            for k in ("sql", "sql_context", "db_path", "id")
        }
        reward_values = {
            f.__name__: f(prompts=prompts, completions=firsts, **columns) for f in self.rewards
        }
        records = []
        for i, (sample, prompt, texts) in enumerate(
            zip(samples, prompts, completions, strict=True)
        ):
            record: dict[str, Any] = {
                "id": sample.output_id,
                "question": sample.question,
                "schema": sample.schema,
                "sql_context": sample.sql_context,
                "db_path": sample.db_path,
                "gold_sql": sample.sql,
                "prompt": prompt,
                "completion": texts[0],
            }
            record.update(self._one(sample, self.prefill + texts[0], bird=self.cfg.bird_metrics))
            record["rewards"] = {name: values[i] for name, values in reward_values.items()}
            record["metadata"] = dict(sample.metadata)
            others = sampled[i] if sampled is not None else texts
            if len(others) > 1:
                record["samples"] = [
                    {
                        k: v
                        for k, v in self._one(sample, self.prefill + t).items()
                        if k != "execution"
                    }
                    for t in others
                ]
            if self.cfg.vote and record.get("samples"):
                record["vote"] = vote_record(record["samples"])
            records.append(record)
        return records


def prompted_eval_config(
    model: str,
    data: str,
    out_dir: str,
    *,
    prompt: Any = None,
    generation: GenerationConfig | None = None,
    **options: Any,
) -> tuple[EvalConfig, Any]:
    """An :class:`EvalConfig` that prompts ``model`` the way it was trained.

    The prompt settings (system prompt, one-shot, prefill, sample rows, completion budget)
    come from the model's run (:func:`sqlgrpo.models.run_settings.resolve_prompt`); those set in
    ``prompt`` (a :class:`~sqlgrpo.models.run_settings.PromptSettings`) override them. ``options``
    are the other :class:`EvalConfig` fields. Returns the config and the resolved settings
    (with where they came from).
    """
    from dataclasses import replace

    from sqlgrpo.models.run_settings import DEFAULT_MAX_NEW_TOKENS, resolve_prompt

    resolved = resolve_prompt(model, prompt)
    run = resolved.settings
    generation = replace(
        generation or GenerationConfig(),
        max_new_tokens=run.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
    )
    cfg = EvalConfig(
        model=model,
        data=data,
        out_dir=out_dir,
        prefill=run.prefill or "",
        one_shot=bool(run.one_shot),
        system_prompt=run.system_prompt,
        sample_rows=run.sample_rows or 0,
        prompt_source=resolved.source,
        generation=generation,
        **options,
    )
    return cfg, resolved


def _prompt_config(cfg: EvalConfig) -> Any:
    from sqlgrpo.data import PromptConfig

    kwargs: dict[str, Any] = {
        "one_shot": cfg.one_shot,
        "prefill": cfg.prefill,
        "sample_rows": cfg.sample_rows,
    }
    if cfg.system_prompt:
        kwargs["system_prompt"] = cfg.system_prompt
    return PromptConfig(**kwargs)


def evaluate(
    cfg: EvalConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    generator: Generator | None = None,
    stop_after: int | None = None,
    greedy_generator: Generator | None = None,
) -> EvalResult:
    """Run (or resume) an evaluation and write predictions.jsonl and metrics.json.

    ``model``/``tokenizer``/``generator`` may be given to skip loading; ``stop_after``
    stops after that many newly generated examples (used to test resuming). With
    ``cfg.vote`` each record's own completion comes from ``greedy_generator`` (by
    default a greedy twin of ``generator``) and the samples from ``generator``.
    """
    from sqlgrpo.data import on_engine, render_sample_prompt

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = _load_samples(cfg)
    if not samples:
        raise ValueError(f"{cfg.data}: no samples to evaluate (split={cfg.split!r})")
    done = _check_resume(out, cfg)
    (out / SETTINGS_FILE).write_text(json.dumps(cfg.settings(), indent=2) + "\n", encoding="utf-8")
    pending = [s for s in samples if s.id not in done]
    logger.info(
        "%d examples: %d already in %s, %d to generate",
        len(samples),
        len(samples) - len(pending),
        out,
        len(pending),
    )

    model_path = None
    precision = None  # PrecisionChoice of the transformers weights that decode, when they do
    generated = 0
    gen_seconds = 0.0
    if pending:
        llama_cpp = cfg.generation.backend == "llama-cpp"
        if tokenizer is None and llama_cpp:
            from sqlgrpo.generation.llamacpp import load_gguf_tokenizer

            model_path, tokenizer = cfg.model, load_gguf_tokenizer(cfg.model)
        elif generator is None and model is None and not llama_cpp and not _wants_vllm(cfg):
            from sqlgrpo.models import load_model_and_tokenizer, resolve_model_path
            from sqlgrpo.models.precision import resolve_precision

            precision = resolve_precision(cfg.generation.precision, "cpu")
            logger.info("%s", precision.describe())
            model_path = resolve_model_path(cfg.model)  # resolved once, loaded once
            model, tokenizer = load_model_and_tokenizer(model_path, dtype=precision.dtype)
        elif tokenizer is None:
            from sqlgrpo.models import load_tokenizer, resolve_model_path

            model_path = resolve_model_path(cfg.model)
            tokenizer = load_tokenizer(model_path)
        if generator is None:
            generator = make_generator(
                cfg.generation, model=model, tokenizer=tokenizer, model_path=model_path
            )
        if precision is None and model is not None:
            from sqlgrpo.models.precision import loaded_precision

            precision = loaded_precision(cfg.generation.precision, model)
        pcfg = _prompt_config(cfg)
        prompts = [render_sample_prompt(on_engine(s, cfg.engine), pcfg, tokenizer) for s in pending]
        scorer = Scorer(cfg)
        if cfg.vote and greedy_generator is None:
            greedy_generator = greedy_twin(generator)
        generated, gen_seconds = _run(
            generator, scorer, pending, prompts, out, cfg, stop_after, greedy_generator, tokenizer
        )

    records = read_records(out / PREDICTIONS_FILE)
    ordered = [records[s.id] for s in samples if s.id in records]
    metrics = aggregate(ordered, turns=cfg.feedback.turns if cfg.feedback.enabled else None)
    metrics.update(
        compare_rule=cfg.compare_rule,
        complete=len(ordered) == len(samples),
        n_expected=len(samples),
        model=cfg.model,
        model_path=model_path,
        data=cfg.data,
        split=cfg.split,
        settings=cfg.settings(),
        backend=getattr(generator, "name", None),
        precision=precision.to_dict() if precision is not None else _earlier_precision(out),
        timing={
            "examples_generated_this_run": generated,
            "generation_seconds": gen_seconds,
            "examples_per_second": generated / gen_seconds if gen_seconds > 0 else None,
            "resumed_examples": len(samples) - len(pending),
        },
    )
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return EvalResult(metrics, out, generated, len(samples) - len(pending))


def _earlier_precision(out: Path) -> dict[str, str] | None:
    """The precision an earlier run of this evaluation recorded (a resume that generated
    nothing keeps it)."""
    try:
        return json.loads((out / METRICS_FILE).read_text(encoding="utf-8")).get("precision")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def greedy_twin(generator: Generator) -> Generator:
    """A copy of ``generator`` sharing its model but decoding greedily, one answer each."""
    gen_cfg = getattr(generator, "cfg", None)
    if not isinstance(gen_cfg, GenerationConfig):
        raise ValueError(
            f"cannot derive a greedy generator from {type(generator).__name__}; pass one"
        )
    twin = copy.copy(generator)
    twin.cfg = replace(gen_cfg, temperature=0.0, num_samples=1)  # type: ignore[attr-defined]
    return twin


def _wants_vllm(cfg: EvalConfig) -> bool:
    from sqlgrpo.generation import vllm_available

    return cfg.generation.backend == "vllm" or (
        cfg.generation.backend == "auto" and vllm_available()
    )


def _run(
    generator: Generator,
    scorer: Scorer,
    samples: list[Any],
    prompts: list[str],
    out: Path,
    cfg: EvalConfig,
    stop_after: int | None,
    greedy_generator: Generator | None = None,
    tokenizer: Any = None,
) -> tuple[int, float]:
    from tqdm.auto import tqdm

    from sqlgrpo.generation import generate

    generated = 0
    correct = 0
    voted_correct = 0
    gen_seconds = 0.0
    with (
        (out / PREDICTIONS_FILE).open("a", encoding="utf-8") as fh,
        tqdm(total=len(samples), desc="eval", disable=not cfg.generation.show_progress) as bar,
    ):
        batches = generator.generate_batches(prompts)
        while True:
            started = time.perf_counter()
            try:
                idx, texts = next(batches)
            except StopIteration:
                break
            gen_seconds += time.perf_counter() - started
            batch_prompts = [prompts[i] for i in idx]
            batch_samples = [samples[i] for i in idx]
            sampled = None
            if greedy_generator is not None:  # voting: the record's own answer is greedy
                started = time.perf_counter()
                texts, sampled = generate(greedy_generator, batch_prompts), texts
                gen_seconds += time.perf_counter() - started
            with scorer.remember():
                turns = None
                if cfg.feedback.enabled:  # later turns count as generation time (SQL runs too)
                    started = time.perf_counter()
                    turns = scorer.feedback(
                        batch_samples, batch_prompts, texts, generator, tokenizer
                    )
                    gen_seconds += time.perf_counter() - started
                records = scorer.score(batch_samples, batch_prompts, texts, sampled, turns)
            for record in records:
                fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            generated += len(idx)
            correct += sum(bool(r["match"]) for r in records)
            bar.update(len(idx))
            postfix = {"acc": f"{correct}/{generated}"}  # running totals over this run
            if cfg.vote:
                voted_correct += sum(bool(r.get("vote", {}).get("match")) for r in records)
                postfix["voted"] = f"{voted_correct}/{generated}"
            bar.set_postfix(postfix)
            if stop_after is not None and generated >= stop_after:
                logger.info("stopping after %d examples as asked", generated)
                break
    return generated, gen_seconds
