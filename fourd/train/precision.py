"""Lightning precision: names with 'auto' resolved for the device that runs the step, and the plugin."""

from __future__ import annotations

import torch
from lightning.fabric.plugins.precision.amp import _optimizer_handles_unscaling
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch.optim import Optimizer

from fourd.errors import ConfigError

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere; older GPUs only emulate bf16 (slowly)


def bf16_gpu(accelerator: str) -> bool:
    """Whether this run's steps run on a CUDA device that computes bf16 natively (where 'auto' means bf16-mixed).

    `torch.cuda.is_bf16_supported()` also says yes on V100 and T4, which emulate it.
    """
    if accelerator not in ("auto", "gpu", "cuda") or not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability() >= NATIVE_BF16_CAPABILITY


def resolve_precision(precision: str | int, bf16_gpu: bool) -> str:
    """A Lightning precision name: aliases spelled out; 'auto' is bf16-mixed on a GPU with bf16, else 32-true."""
    if str(precision) == "auto":
        return "bf16-mixed" if bf16_gpu else "32-true"
    name = ALIASES.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise ConfigError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)} or auto")
    return name


class ClippingMixedPrecision(MixedPrecision):
    """Lightning's autocast plugin, but gradient clipping works with fused optimizers.

    Lightning refuses to clip when the optimizer unscales inside its step (fused AdamW), even under bf16, which
    has no scaler (Lightning-AI/pytorch-lightning#21435). Here bf16 clips as usual, and fp16 unscales first:
    torch's GradScaler then steps the fused kernel on the unscaled gradients and still skips non-finite steps.
    """

    def clip_gradients(
        self,
        optimizer: Optimizer,
        clip_val: float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        if clip_val > 0 and self.scaler is not None and _optimizer_handles_unscaling(optimizer):
            self.scaler.unscale_(optimizer)  # Lightning skipped it for this optimizer
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)


def precision_plugin(name: str, device_type: str) -> Precision:
    """The plugin for a resolved precision name; autocast on `device_type` ('cuda' or 'cpu') when mixed."""
    if name == "32-true":
        return Precision()
    return ClippingMixedPrecision(name, device_type)
