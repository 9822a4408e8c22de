"""``SqlGrpoTrainer``: TRL's ``GRPOTrainer`` with sqlgrpo's sampling, loss and run-folder logging.

- sampling: :func:`sqlgrpo.generation.decoding.decode_repeated` (each prompt of a group prefilled once,
  finished completions leave the batch) where it applies, else TRL's ``generate``; under bf16
  precision with fp32 master weights, from a bf16 copy of the policy refreshed after each
  optimizer step, with truncated importance sampling in the loss; or, opt-in
  (``rollout_sampler="llama-cpp"``), llama.cpp from a GGUF mirror of the policy
  (:mod:`sqlgrpo.training.llamacpp_sampler`) with truncated importance sampling in the loss;
- a micro-batch whose advantages are all zero skips its forward and backward;
- rewards of one batch that check the same SQL (an execution reward and a gated reasoning
  reward) share each check's outcome;
- the hack monitors (:mod:`sqlgrpo.rewards.monitors`: shares of completions that run on after
  ``</sql>``, are a bare SELECT, or GROUP BY a key column) logged every step as
  ``monitors/NAME``;
- ``completions.jsonl`` in the run folder every ``completions_every`` steps;
- the prompt order of epoch *e* depends only on (seed, *e*) (:class:`EpochRepeatSampler`), so
  a run resumed in a later epoch sees the prompts the uninterrupted run saw.
- multi-turn rollouts (``rollout_func=MultiTurnRollout``, :mod:`sqlgrpo.training.multi_turn`):
  the rollout reads the batch's reward columns (:attr:`SqlGrpoTrainer.rollout_inputs`), samples
  each turn with the sampler above inside the remaining budget, and the rewards score each
  completion's last answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from sqlgrpo.rewards.monitors import METRIC_PREFIX, hack_monitors
from sqlgrpo.rewards.registry import execution_checks
from sqlgrpo.training.callbacks import write_completions

logger = logging.getLogger(__name__)


class EpochRepeatSampler(RepeatSampler):
    """TRL's ``RepeatSampler`` whose shuffle for epoch *e* is the *e*-th permutation drawn from
    ``seed``, whichever epoch the iteration starts in.

    TRL's sampler draws each epoch's permutation from one generator that advances at every
    pass, and has no ``set_epoch``: a run resumed in epoch 2 restarts that generator and
    replays epoch 1's order, so its prompts differ from the uninterrupted run's from there on.
    Here ``set_epoch`` (which the trainer calls before every epoch, resumed ones included)
    reseeds the generator and draws the permutations of the earlier epochs first; without it,
    passes count epochs by themselves, which is TRL's sequence.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass is."""
        self.epoch = epoch

    def __iter__(self) -> Any:
        if self.shuffle and self.seed is not None:
            import torch

            self.generator.manual_seed(self.seed)
            for _ in range(self.epoch):  # the earlier epochs' permutations
                torch.randperm(self.num_samples, generator=self.generator)
        self.epoch += 1
        return super().__iter__()


class SqlGrpoTrainer(GRPOTrainer):
    """GRPOTrainer that writes completions.jsonl and skips steps that teach nothing.

    When every completion in a micro-batch has advantage 0 (each group's rewards are
    equal) and no KL or entropy term is active, the policy loss and its gradient are
    exactly zero, yet TRL would still run the forward and backward pass. Here that
    micro-batch skips both (agreed across processes so data parallel ranks stay in step),
    and the skip is counted in the ``skipped_backward`` metric.

    Without vLLM, completions are sampled with :func:`sqlgrpo.generation.decoding.decode_repeated`
    (``generation_decoder: incremental``): each prompt of a group is prefilled once and a
    completion leaves the batch when it ends. Settings that loop does not cover
    (repetition penalty, extra generation kwargs, a static cache, images, DeepSpeed or
    FSDP) use TRL's ``generate`` path.

    Per-token log-probabilities (the policy's in the loss, the old policy's and the
    reference's when TRL needs them) come from :mod:`sqlgrpo.training.shared_prefix`
    (``shared_prefix_loss``): rows of a micro-batch that share a prompt run it once. Where
    that cannot apply (multimodal inputs, an MoE auxiliary loss, an unsupported attention
    implementation or cache, gradient checkpointing) the run says why once and uses TRL's
    per-row pass.
    """

    def __init__(
        self,
        *args: Any,
        completions_path: Path | None = None,
        completions_every: int = 1,
        completions_count: int = 8,
        prefill: str = "",
        skip_zero_variance: bool = True,
        resample_flat_batches: int = 0,
        generation_decoder: str = "incremental",
        rollout_sampler: str = "torch",
        shared_prefix_loss: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.generation_decoder = generation_decoder
        self.rollout_sampler = rollout_sampler
        self._llama: Any = None  # the llama.cpp sampler, built at the first batch it samples
        self._llama_step = -1  # the optimizer step whose weights the sampler holds
        self._llama_told = False
        self._is_inputs: dict[str, Any] | None = None  # the micro-batch whose IS weights are due
        self._bf16_twin: Any = None  # bf16 copy of fp32 master weights that torch samples from
        self._bf16_step = -1  # the optimizer step whose weights the copy holds
        self.shared_prefix_loss = shared_prefix_loss
        self._shared_prefix_told: set[str] = set()
        self.completions_path = completions_path
        self.completions_every = completions_every
        self.completions_count = completions_count
        self.prefill = prefill
        self.skip_zero_variance = skip_zero_variance
        self.resample_flat_batches = resample_flat_batches
        self.skipped_backward = 0
        self._last_completions_step = -1
        self._rollout_inputs: list[dict[str, Any]] | None = None  # the batch being rolled out
        self._turn_budget: int | None = None  # new tokens allowed in a later turn of a rollout

    @property
    def rollout_inputs(self) -> list[dict[str, Any]] | None:
        """The rows (prompt and reward columns) of the batch being generated, for a
        ``rollout_func`` that needs more than the prompts (the sandbox needs each database)."""
        return self._rollout_inputs

    @contextmanager
    def completion_budget(self, tokens: int) -> Iterator[None]:
        """Inside this block sqlgrpo's samplers stop each completion at ``tokens`` new tokens
        (a later turn of a multi-turn rollout gets what is left of ``max_completion_length``);
        TRL's own paths keep their limit and the rollout cuts their output."""
        previous, self._turn_budget = self._turn_budget, max(1, int(tokens))
        try:
            yield
        finally:
            self._turn_budget = previous

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        """TRL's sampler (same repeats, batches and seed), with each epoch's order a function
        of (seed, epoch): see :class:`EpochRepeatSampler`."""
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is not RepeatSampler:
            return sampler
        return EpochRepeatSampler(
            data_source=sampler.data_source,
            mini_repeat_count=sampler.mini_repeat_count,
            batch_size=sampler.batch_size,
            repeat_count=sampler.repeat_count,
            shuffle=sampler.shuffle,
            seed=sampler.seed,
        )

    def _sampling_checks(self, images: Any, multimodal_fields: Any) -> list[tuple[bool, str]]:
        """The trainer's conditions under which only TRL's own sampling path applies."""
        args = self.args
        return [
            (self.use_vllm, "vLLM generates"),
            (getattr(self, "use_transformers_continuous_batching", False), "continuous batching"),
            (images is not None or bool(multimodal_fields), "multimodal inputs"),
            (self.is_deepspeed_enabled or self.is_fsdp_enabled, "DeepSpeed / FSDP"),
            ((self.repetition_penalty or 1.0) != 1.0, "repetition_penalty"),
            (bool(args.generation_kwargs), "generation_kwargs"),
            (args.cache_implementation is not None, "cache_implementation"),
        ]

    def _incremental_blocker(self, images: Any, multimodal_fields: Any) -> str | None:
        """Why this batch must be sampled with TRL's own path, or None (decided by
        :func:`sqlgrpo.generation.backends.choose_decoder`, with the trainer's own conditions)."""
        from sqlgrpo.generation import choose_decoder

        model = self.accelerator.unwrap_model(self.model)
        checks = self._sampling_checks(images, multimodal_fields)
        return choose_decoder(model, self.generation_decoder, checks)[1]

    def _llama_blocker(self, images: Any, multimodal_fields: Any) -> str | None:
        """Why the llama.cpp sampler cannot sample this batch, or None."""
        from sqlgrpo.training.llamacpp_sampler import unsupported_reason

        checks = self._sampling_checks(images, multimodal_fields) + [
            (self.loss_type == "vespo", "the vespo loss"),
            (self.off_policy_mask_threshold is not None, "off_policy_mask_threshold"),
        ]
        why = next((why for blocked, why in checks if blocked), None)
        return why or unsupported_reason(self.accelerator.unwrap_model(self.model))

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        """Sample a batch's completions; the seconds it took go to the ``sampling_seconds`` metric."""
        import time

        started = time.perf_counter()
        llama_why = "not asked for"
        if self.rollout_sampler == "llama-cpp":
            llama_why = self._llama_blocker(images, multimodal_fields)
            if llama_why is not None and not self._llama_told:
                logger.warning("rollout_sampler llama-cpp not used (%s): torch samples", llama_why)
                self._llama_told = True
        if llama_why is None:
            result = self._sample_llama(prompt_ids)
        elif (why := self._incremental_blocker(images, multimodal_fields)) is None:
            result = self._sample_incremental(prompt_ids)
        else:
            if not getattr(self, "_told_decoder", False):
                logger.info("GRPO sampling uses TRL's generate (%s)", why)
                self._told_decoder = True
            result = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["sampling_seconds"].append(time.perf_counter() - started)
        return result

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """TRL's training loop; the llama.cpp sampler (and its GGUF folder) closed after it."""
        try:
            return super().train(*args, **kwargs)
        finally:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _decode_settings(self) -> Any:
        from sqlgrpo.generation.decoding import DecodeSettings

        return DecodeSettings(
            max_new_tokens=self._turn_budget or self.max_completion_length,
            eos_token_ids=frozenset(self.eos_token_ids),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k or 0,
            min_p=self.min_p,
        )

    def _sample_llama(
        self, prompt_ids: list[list[int]]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Sample with llama.cpp, its mirror refreshed first when an optimizer step has changed
        the policy; the sampler's log-probabilities go to TRL as ``sampling_per_token_logps``."""
        from trl.extras.profiling import profiling_context

        from sqlgrpo.training.llamacpp_sampler import LlamaCppSampler

        model = self.accelerator.unwrap_model(self.model)
        step = self.state.global_step
        with profiling_context(self, "sqlgrpo.llama_cpp_refresh"):
            if self._llama is None:
                self._llama = LlamaCppSampler(model, self.processing_class)
                logger.info("GRPO sampling with llama.cpp from %s", self._llama.mirror.path)
            elif self._llama_step != step:
                self._llama.refresh(model)
        self._llama_step = step
        with profiling_context(self, "sqlgrpo.llama_cpp_sample"):
            return self._llama.sample(prompt_ids, self._decode_settings())

    def _sample_incremental(self, prompt_ids: list[list[int]]) -> tuple[list[list[int]], None]:
        import torch
        from trl.extras.profiling import profiling_context
        from trl.models import unwrap_model_for_generation

        from sqlgrpo.generation.decoding import decode_repeated

        settings = self._decode_settings()
        with (
            profiling_context(self, "sqlgrpo.decode"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
        ):
            twin = self._bf16_sampler(unwrapped_model)
            if twin is not None:
                return decode_repeated(twin, prompt_ids, settings, return_logps=True)
            completion_ids = decode_repeated(unwrapped_model, prompt_ids, settings)
        return completion_ids, None

    def _bf16_sampler(self, model: Any) -> Any:
        """Under bf16 precision with fp32 master weights: the bf16 copy torch samples from,
        refreshed when an optimizer step has changed the policy (the sampler's log-probabilities
        then correct the loss by truncated importance sampling, as for llama.cpp). None where
        the policy itself samples: fp32 precision, weights already bf16, or a loss that reads
        the sampler's log-probabilities its own way."""
        import torch

        from sqlgrpo.models.precision import bf16_copy, refresh_copy

        if not self.args.bf16 or next(model.parameters()).dtype == torch.bfloat16:
            return None
        if self.loss_type == "vespo" or self.off_policy_mask_threshold is not None:
            if not getattr(self, "_told_bf16", False):
                logger.info(
                    "bf16 sampling copy not used (vespo / off-policy mask): the policy samples"
                )
                self._told_bf16 = True
            return None
        step = self.state.global_step
        if self._bf16_twin is None:
            self._bf16_twin = bf16_copy(model)
            logger.info(
                "GRPO samples from a bf16 copy of the policy, refreshed every optimizer step"
            )
        elif self._bf16_step != step:
            refresh_copy(self._bf16_twin, model)
        self._bf16_step = step
        return self._bf16_twin

    def _shared_prefix_blocker(
        self, model: Any, compute_aux_loss: bool, extra: dict[str, Any]
    ) -> str | None:
        """Why this call must use TRL's per-row pass, or None."""
        from sqlgrpo.training.shared_prefix import unsupported_reason

        if not self.shared_prefix_loss:
            return "shared_prefix_loss is off"
        if any(value is not None for value in extra.values()):
            return "multimodal inputs"
        if compute_aux_loss:
            return "the MoE auxiliary loss is on"
        return unsupported_reason(model)

    def _tell_shared_prefix(self, why: str) -> None:
        if why not in self._shared_prefix_told and why != "shared_prefix_loss is off":
            self._shared_prefix_told.add(why)
            logger.info("shared-prefix loss not used (%s): TRL's per-row pass instead", why)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **extra,
    ):
        """TRL's per-token log-probabilities, each shared prompt of a chunk run once."""
        import torch

        from sqlgrpo.training.shared_prefix import UnsupportedCache, shared_prefix_logps

        why = self._shared_prefix_blocker(model, compute_aux_loss, extra)
        if why is not None:
            self._tell_shared_prefix(why)
            result = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size,
                compute_entropy, compute_aux_loss, **extra,
            )  # fmt: skip
            self._weigh_advantages(result[0])
            return result
        size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), size):
            ids, mask = input_ids[start : start + size], attention_mask[start : start + size]
            result = None
            try:
                with self.accelerator.autocast():
                    result = shared_prefix_logps(
                        model, ids, mask, logits_to_keep, compute_entropy=compute_entropy
                    )
            except UnsupportedCache as exc:
                self.shared_prefix_loss = False  # the model does not change within a run
                self._tell_shared_prefix(str(exc))
            if result is None:  # no two rows share a prompt: TRL's pass costs the same
                chunk_logps, chunk_entropies, _ = super()._get_per_token_logps_and_entropies(
                    model, ids, mask, logits_to_keep, compute_entropy=compute_entropy
                )
                result = (chunk_logps, chunk_entropies)
            logps.append(result[0])
            entropies.append(result[1])
        entropy = torch.cat(entropies) if compute_entropy else None
        logps = torch.cat(logps)
        self._weigh_advantages(logps)
        return logps, entropy, None

    def _loss_can_skip(self) -> bool:
        args = self.args
        return (
            self.skip_zero_variance
            and args.beta == 0.0
            and getattr(args, "entropy_coef", 0.0) == 0.0
            and not getattr(args, "use_adaptive_entropy", False)
        )

    def _all_ranks_zero(self, advantages: Any) -> bool:
        import torch

        local = torch.tensor(
            [0.0 if bool((advantages == 0).all()) else 1.0], device=self.accelerator.device
        )
        return float(self.accelerator.gather(local).max()) == 0.0

    def _weigh_advantages(self, logps: Any) -> None:
        """In the loss pass of a micro-batch sampled by llama.cpp: multiply each token's
        advantage by its truncated importance weight (learner vs sampler log-probabilities;
        TRL 1.16's ``_compute_loss`` reads the advantages after this pass, and for its
        ratio-clipped losses a weight w >= 0 on the advantage is w on the token's loss term,
        as TRL applies vLLM's correction)."""
        inputs, self._is_inputs = self._is_inputs, None
        if inputs is None:
            return
        from sqlgrpo.training.importance_sampling import importance_weights

        args = self.args
        learner = inputs.get("old_per_token_logps")
        learner = logps.detach() if learner is None else learner
        sampler = inputs["sampling_per_token_logps"]
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        weights = importance_weights(
            learner,
            sampler,
            mask,
            args.vllm_importance_sampling_mode,
            args.vllm_importance_sampling_clip_min,
            args.vllm_importance_sampling_clip_max,
        )
        advantages = inputs["advantages"]
        inputs["advantages"] = (
            advantages[:, None] if advantages.dim() == 1 else advantages
        ) * weights
        valid = mask.bool()
        gap = (learner - sampler).abs()[valid]
        flat = weights.flatten() if weights.shape[1] == 1 else weights[valid]
        metrics = self._metrics["train" if self.model.training else "eval"]
        if gap.numel():
            metrics["sampling/sampling_logp_difference/mean"].append(float(gap.mean()))
            metrics["sampling/sampling_logp_difference/max"].append(float(gap.max()))
        if flat.numel():
            metrics["sampling/importance_sampling_ratio/mean"].append(float(flat.mean()))
            metrics["sampling/importance_sampling_ratio/min"].append(float(flat.min()))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self._loss_can_skip() and model.training:
            mode = "train"
            if self._all_ranks_zero(inputs["advantages"]):
                import torch

                self.skipped_backward += 1
                self._metrics[mode]["skipped_backward"].append(1.0)
                # A leaf with no path to the parameters: backward is a no-op, grads stay None.
                return torch.zeros((), device=self.accelerator.device, requires_grad=True)
            self._metrics[mode]["skipped_backward"].append(0.0)
        if not self.use_vllm and inputs.get("sampling_per_token_logps") is not None:
            inputs = dict(inputs)  # the loss pass rewrites its advantages (_weigh_advantages)
            self._is_inputs = inputs
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._is_inputs = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._write_completions()
        if self.model.training:
            logs = {**logs, "skipped_backward_total": float(self.skipped_backward)}
        super().log(logs, start_time)

    def _checkers(self) -> dict[int, Any]:
        """Every execution checker of the rewards and of a multi-turn rollout, by identity."""
        checkers = {id(e.checker): e.checker for e in execution_checks(self.reward_funcs)}
        rollout_checker = getattr(getattr(self, "rollout_func", None), "checker", None)
        if rollout_checker is not None:
            checkers[id(rollout_checker)] = rollout_checker
        return checkers

    def _generate_and_score_completions(self, inputs: Any) -> Any:
        """TRL's step of sampling and scoring (:meth:`_sample_and_score`); with
        ``resample_flat_batches`` N > 0, a batch in which every group's rewards are equal (the
        step would teach nothing: every advantage is 0) is sampled again from other prompts,
        up to N times (DAPO's dynamic sampling, at the granularity of a whole batch). The
        decision is taken on every process together; the draws are seeded by the run's seed,
        the step and the try, so a resumed run draws the same prompts."""
        output = self._sample_and_score(inputs)
        tries = 0
        while (
            tries < self.resample_flat_batches
            and self.model.training
            and self._all_ranks_zero(output["advantages"])
        ):
            tries += 1
            inputs = self._fresh_batch(inputs, tries)
            output = self._sample_and_score(inputs)
        if self.resample_flat_batches and self.model.training:
            self._metrics["train"]["resampled_batches"].append(float(tries))
        return output

    def _fresh_batch(self, inputs: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
        """As many other prompts as ``inputs`` holds, each repeated for its group, drawn from
        the training set with a generator seeded by (seed, step, attempt, process)."""
        import random

        group = self.num_generations
        dataset = self.train_dataset
        draw = random.Random(
            f"{self.args.seed}:{self.state.global_step}:{attempt}:{self.accelerator.process_index}"
        )
        picks = [draw.randrange(len(dataset)) for _ in range(max(1, len(inputs) // group))]
        return [dict(dataset[i]) for i in picks for _ in range(group)]

    def _sample_and_score(self, inputs: Any) -> Any:
        """TRL's step of sampling and scoring, with the batch's rows handed to a
        ``rollout_func`` (:attr:`rollout_inputs`) and each execution checker keeping its
        outcomes for the batch (a multi-turn rollout's run of an answer is the reward's)."""
        self._rollout_inputs = inputs
        try:
            with ExitStack() as stack:
                for checker in self._checkers().values():
                    stack.enter_context(checker.remember_outcomes())
                return super()._generate_and_score_completions(inputs)
        finally:
            self._rollout_inputs = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's reward computation, with every execution checker among the rewards keeping
        the outcomes of this batch: a gated reasoning reward then reuses the execution
        reward's check of each completion instead of running its SQL again. After a
        multi-turn rollout each completion is scored on its last answer (the observation turns
        and the earlier answers are in the logged completion, not in what the rewards read)."""
        from sqlgrpo.training.multi_turn import FINAL_ANSWER

        finals = [row.get(FINAL_ANSWER) for row in inputs]
        if inputs and all(final is not None for final in finals):
            completions = [
                [{"role": "assistant", "content": final}] if isinstance(c, list) else final
                for c, final in zip(completions, finals, strict=True)
            ]
        with ExitStack() as stack:
            for checker in self._checkers().values():
                stack.enter_context(checker.remember_outcomes())
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._log_monitors(inputs, completions)
        return rewards

    def _log_monitors(self, inputs: list[dict[str, Any]], completions: list[Any]) -> None:
        """Log this batch's hack monitor shares as ``monitors/NAME`` metrics (TRL averages
        them over the processes and the logging steps, as the rewards' own metrics)."""
        if not inputs:
            return
        columns = {k: [row.get(k) for row in inputs] for k in ("sql", "sql_context", "db_path")}
        try:
            shares = hack_monitors(completions, columns, prefill=self.prefill)
        except Exception:  # monitoring must never stop training
            logger.exception("hack monitors failed for this batch")
            return
        for name, share in shares.items():
            self._log_metric(METRIC_PREFIX + name, share)

    def _write_completions(self) -> None:
        step = self.state.global_step
        if (
            self.completions_path is None
            or self.completions_every <= 0
            or not self.accelerator.is_main_process
            or step % self.completions_every
            or step == self._last_completions_step
            or not self._logs["completion"]
        ):
            return
        self._last_completions_step = step
        write_completions(
            self.completions_path,
            step,
            list(self._logs["prompt"]),
            list(self._logs["completion"]),
            {name: list(values) for name, values in self._logs["rewards"].items()},
            list(self._logs["advantages"]),
            prefill=self.prefill,
            limit=self.completions_count,
        )
