"""The one precision decision: ``auto | fp32 | bf16`` for training, sampling and evaluation.

``auto`` picks bfloat16 where the device has bf16 matrix units (a CPU with AMX-BF16 or
AVX512-BF16, as torch reports them; a GPU that supports bf16) and fp32 elsewhere: on a CPU
without those units torch emulates bf16 matrix products, which is slower than fp32. An explicit
``bf16`` runs bf16 anyway (with a warning where it is emulated); ``fp32`` never casts.

Training keeps fp32 master weights and optimizer state and runs forward and backward under
bf16 autocast (``bf16: true`` in TRL's terms); sampling and evaluation decode with bf16
weights. Callers record :meth:`PrecisionChoice.to_dict` beside their results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: /proc/cpuinfo flags of bf16 matrix units (Intel AMX-BF16, AVX512-BF16; AMD Zen 4 has the latter).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    """What runs, on which device, and why."""

    requested: str  # auto | fp32 | bf16
    name: str  # fp32 | bf16
    device: str  # cpu | cuda | xpu | ...
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def dtype(self) -> Any:
        """The torch dtype of weights that decode (``torch.bfloat16`` or ``torch.float32``)."""
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    def to_dict(self) -> dict[str, str]:
        """JSON-ready record for ``metrics.json`` and run folders."""
        return asdict(self)

    def describe(self) -> str:
        """One line: ``precision bf16 (auto): <reason>``."""
        return f"precision {self.name} ({self.requested}, {self.device}): {self.reason}"


def _cpuinfo() -> str:
    """``/proc/cpuinfo``'s text, empty where there is none (not Linux)."""
    path = Path("/proc/cpuinfo")
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The bf16 matrix-unit flags this CPU reports: torch's own checks first, then
    ``/proc/cpuinfo`` (``cpuinfo`` text can be passed for tests)."""
    found: list[str] = []
    if cpuinfo is None:
        try:
            import torch

            if torch.cpu._is_amx_tile_supported():  # AMX tiles imply AMX-BF16 on every part
                found.append("amx_bf16")
            if torch.cpu._is_avx512_bf16_supported():
                found.append("avx512_bf16")
        except (ImportError, AttributeError):  # pragma: no cover - older torch
            pass
        cpuinfo = _cpuinfo()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            found.extend(f for f in CPU_BF16_FLAGS if f in flags and f not in found)
            break
    return found


def cpu_model_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (benchmarks record it), or ``unknown``."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[-1].strip()
    return "unknown"


def accelerator_bf16(device: str) -> bool:
    """True when the accelerator ``device`` (cuda, xpu) supports bf16."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.startswith("xpu"):
        return bool(hasattr(torch, "xpu") and torch.xpu.is_available())
    return False


def default_device() -> str:
    """``cuda`` / ``xpu`` when one is visible, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def resolve_precision(
    requested: str,
    device: str | None = None,
    *,
    cpu_flags: Callable[[], list[str]] | None = None,
) -> PrecisionChoice:
    """Decide the precision for ``device`` (default: the visible accelerator, else the CPU).

    Raises ``ValueError`` for a value outside :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    device = device or default_device()
    on_cpu = device.startswith("cpu")
    if on_cpu:
        flags = (cpu_flags or cpu_bf16_flags)()
        units = bool(flags)
        what = (
            f"this CPU has {', '.join(flags)}"
            if units
            else "this CPU has no AMX-BF16 or AVX512-BF16"
        )
    else:
        units = accelerator_bf16(device)
        what = f"{device} {'supports' if units else 'does not support'} bf16"
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", device, "fp32 was asked for")
    if requested == "bf16":
        if not units:
            logger.warning("bf16 asked for but %s: bf16 runs emulated, slower than fp32", what)
        return PrecisionChoice(requested, "bf16", device, f"bf16 was asked for ({what})")
    if units:
        return PrecisionChoice(requested, "bf16", device, f"{what} (bf16 matrix units)")
    note = "; fp32 (bf16 would be emulated, slower)" if on_cpu else "; fp32"
    return PrecisionChoice(requested, "fp32", device, what + note)


def loaded_precision(requested: str, model: Any) -> PrecisionChoice:
    """The choice a caller records for a model it was handed already loaded: what its weights
    are, whatever was asked for."""
    import torch

    dtype = next(model.parameters()).dtype
    device = str(next(model.parameters()).device.type)
    name = "bf16" if dtype == torch.bfloat16 else "fp32"
    return PrecisionChoice(requested, name, device, f"the model was passed in loaded as {dtype}")


def legacy_flag_precision(requested: str, bf16_flag: bool | None, where: str = "") -> str:
    """Reconcile ``precision`` with TRL's own ``bf16`` flag when a recipe set it: ``auto``
    follows the flag (recipes written before ``precision`` keep their behaviour); an explicit
    precision that contradicts it is an error naming both."""
    if bf16_flag is None:
        return requested
    flag = "bf16" if bf16_flag else "fp32"
    if requested == "auto":
        return flag
    if requested != flag:
        raise ValueError(
            f"{where}precision: {requested} but bf16: {str(bool(bf16_flag)).lower()}; "
            "precision decides: drop bf16 from the recipe or make the two agree"
        )
    return requested


def bf16_copy(model: Any) -> Any:
    """A bf16 copy of ``model`` for decoding (eval mode, no gradients); refresh it with
    :func:`refresh_copy` after the original's weights change."""
    import copy

    import torch

    twin = copy.deepcopy(model).to(torch.bfloat16)
    twin.eval()
    twin.requires_grad_(False)
    return twin


def refresh_copy(twin: Any, model: Any) -> None:
    """Copy ``model``'s current parameters and buffers into ``twin`` (casting to its dtype)."""
    import torch

    with torch.no_grad():
        for (name, dst), (other, src) in zip(
            twin.state_dict(keep_vars=True).items(),
            model.state_dict(keep_vars=True).items(),
            strict=True,
        ):
            if name != other:  # pragma: no cover - a deepcopy keeps the order
                raise RuntimeError(f"bf16 copy out of step with the policy: {name} vs {other}")
            if dst.is_floating_point():
                dst.copy_(src)
