"""Shared-prefix log-probabilities: the rows of a micro-batch that share a prompt run it once.

To score G completions of one prompt, TRL runs the model over G copies of prompt +
completion. In text-to-SQL the prompt (system prompt, schema, question) is longer than the
completion and all G copies are identical token for token, so most of that work is repeated.
Here each distinct prompt of a micro-batch runs once with the key/value cache on, its keys
and values are expanded over the rows that share it (an index, so gradients from every row
flow back into the one prefix), and the completions run on top of that cache through TRL's
fused LM head. The layout is TRL's own: the same left-padded prompt columns, the same
attention mask, the same positions (the cache length continues them), so per-token
log-probabilities, entropies, the loss and its gradients equal TRL's within float rounding
(tests/test_shared_prefix.py).

The prompt is split before its last token: the prefix pass stores keys and values for
``prompt[:-1]``; the completion pass starts at the last prompt token, whose hidden state
scores the first completion token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlgrpo.generation.decoding import cache_argument, output_cache

# attention implementations whose masking of a padded prefix cache is tested
SUPPORTED_ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True)
class PromptGroups:
    """Distinct prompts of a micro-batch: ``first[g]`` is a row holding prompt ``g``,
    ``row_group[i]`` the prompt of row ``i``."""

    first: Any
    row_group: Any

    @property
    def count(self) -> int:
        """How many distinct prompts."""
        return int(self.first.shape[0])


def prompt_groups(prompt_ids: Any, prompt_mask: Any) -> PromptGroups:
    """Group rows whose (left-padded) prompt columns are identical, tokens and mask alike."""
    import torch

    key = prompt_ids.masked_fill(prompt_mask == 0, -1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    rows = torch.arange(key.shape[0], device=key.device)
    count = int(inverse.max()) + 1
    first = torch.full((count,), key.shape[0], dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    # renumber groups in order of first appearance, so row_group indexes ``first``
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(count, device=key.device)
    return PromptGroups(first=first[order], row_group=rank[inverse])


def unsupported_reason(model: Any) -> str | None:
    """Why the shared-prefix pass cannot stand in for TRL's on ``model``, or None.

    ``model`` is what the trainer calls (possibly PEFT- or accelerate-wrapped).
    """
    import torch

    base = model
    while hasattr(base, "module"):  # DDP / accelerate wrappers
        base = base.module
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    config = getattr(base, "config", None)
    if config is None:
        return "the model has no config"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    attention = getattr(config, "_attn_implementation", None) or "eager"
    if attention not in SUPPORTED_ATTENTION:
        return (
            f"attention implementation {attention!r} (supported: {', '.join(SUPPORTED_ATTENTION)})"
        )
    # transformers 5.24 renamed is_gradient_checkpointing (which now warns) to is_activation_...
    name = (
        "is_activation_checkpointing"
        if hasattr(type(base), "is_activation_checkpointing")
        else "is_gradient_checkpointing"
    )
    if torch.is_grad_enabled() and getattr(base, name, False):
        return "gradient checkpointing (transformers drops the key/value cache under it)"
    return None


def cache_reason(cache: Any) -> str | None:
    """Why rows of this prefix cache cannot be expanded and extended exactly, or None."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers:
        return f"the model returned no layered key/value cache ({type(cache).__name__})"
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if odd:
        return f"its cache has {', '.join(odd)} layers (only full-attention layers are shared)"
    return None


class UnsupportedCache(RuntimeError):
    """The model's cache cannot be shared (the reason is the message)."""


def shared_prefix_logps(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    logits_to_keep: int,
    *,
    compute_entropy: bool = False,
) -> tuple[Any, Any] | None:
    """Per-token log-probabilities (and entropies) of the last ``logits_to_keep`` tokens.

    ``input_ids`` / ``attention_mask`` are TRL's prompt + completion batch (prompts
    left-padded, completions right-padded); ``model`` carries TRL's fused LM head
    (``add_fused_lm_head``). Returns None when no two rows share a prompt (nothing to
    save: the caller runs TRL's path). Raises :class:`UnsupportedCache` when the model's
    cache cannot be shared.
    """
    width = input_ids.shape[1]
    prompt_width = width - logits_to_keep
    if prompt_width < 2 or input_ids.shape[0] < 2:
        return None
    groups = prompt_groups(input_ids[:, :prompt_width], attention_mask[:, :prompt_width])
    if groups.count == input_ids.shape[0]:
        return None
    split = prompt_width - 1
    cache_arg = cache_argument(model)
    prefix = model(
        input_ids=input_ids[groups.first, :split],
        attention_mask=attention_mask[groups.first, :split],
        use_cache=True,
        logits_to_keep=1,
    )
    cache = output_cache(prefix)
    why = cache_reason(cache)
    if why is not None:
        raise UnsupportedCache(why)
    cache.batch_select_indices(groups.row_group)  # indexing: the expansion stays in the graph
    tail_ids = input_ids[:, split:]
    labels = tail_ids.masked_fill(attention_mask[:, split:] == 0, -100)
    out = model(
        input_ids=tail_ids,
        attention_mask=attention_mask,
        labels=labels,
        fused_lm_head=True,
        **{cache_arg: cache},
    )
    entropy = out.entropy if compute_entropy else None
    return out.log_probs, entropy
