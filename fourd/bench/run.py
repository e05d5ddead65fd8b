"""The three benchmarks of `tools/bench.py`, each a dict ready for one JSON line: pretraining steps
(optionally against the plain reference), encoder inference, and the data loader."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from statistics import median
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.distributed.device_mesh import init_device_mesh

from fourd.bench.build import (
    DTYPES,
    build_inference_encoder,
    build_reference,
    fourd_optimizer,
    reference_optimizer,
    single_process_group,
    train_step,
)
from fourd.bench.loader import (
    H100_BF16_DENSE_FLOPS,
    decode_limit_clips_per_s,
    gpu_demand_clips_per_s,
    loader_clips_per_s,
)
from fourd.bench.peer import build_hf_videomae, hf_loss
from fourd.bench.profile import speedup_bound, step_profile
from fourd.bench.timing import matmul_peak_flops, time_rounds, warm_up
from fourd.conf import compose, mae_config
from fourd.data.clips import VideoClipDataset
from fourd.models.attention import resolve_backend
from fourd.models.flops import encoder_flops, mae_flops
from fourd.models.mae import MAEConfig
from fourd.models.zoo import parameter_counts
from fourd.train.datamodule import data_module
from fourd.train.optim import OptimConfig, scaled_lr
from fourd.train.parallelize import FSDPConfig, build_mae, fsdp_settings
from fourd.train.settings import check_settings


@dataclass
class BenchOptions:
    device: torch.device
    dtype: str  # a key of DTYPES
    steps: int = 10
    warmup: int = 3
    compare_reference: bool = False
    compare_hf: bool = False  # transformers' VideoMAEForPreTraining (SDPA), the peer users would pick
    mfu: float = 0.45  # --loader: the GPU's assumed training MFU
    peak_flops: float | None = None  # --loader: the GPU's peak (None: the measured one on CUDA, else an H100's)
    profile_rounds: int = 0  # profile this many more steps of each model: seconds per kind of op

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {tuple(DTYPES)}")


def default_dtype(device: str | torch.device) -> str:
    """bf16 (autocast) on CUDA, fp32 elsewhere."""
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def compose_train(exp: str, overrides: list[str]) -> DictConfig:
    """The train config of an experiment with Hydra overrides, as `python -m fourd.train +exp=EXP ...` sees it."""
    cfg = compose("train", [f"+exp={exp}", *overrides])
    check_settings(cfg)
    return cfg


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def device_peak_flops(device: torch.device) -> float | None:
    """The measured dense bf16 matmul FLOP/s on CUDA (the MFU denominator); None elsewhere."""
    return matmul_peak_flops(device) if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    """Release what the last benchmark left so the next one starts from an empty device."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fsdp_config(cfg: DictConfig, dtype: str) -> FSDPConfig | None:
    """FSDP2 settings of the strategy group when it is fsdp; gathered params stay fp32 in an fp32 benchmark."""
    if cfg.strategy.name != "fsdp":
        return None
    config = FSDPConfig(**fsdp_settings(cfg.strategy))
    return config if dtype == "bf16" else dataclasses.replace(config, param_dtype=None)


def random_video(config: MAEConfig, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A batch (B, C, T, H, W) in [0, 1] already on the device: the content does not change the speed."""
    e = config.encoder
    return torch.rand(batch, e.in_chans, e.num_frames, *e.image_size, device=device).to(dtype)


def throughput(seconds: float, batch: int, tokens: int, flops: int, peak: float | None) -> dict[str, Any]:
    """Rates of one timed call that processes `batch` clips of `tokens` tokens and `flops` FLOPs; MFU against `peak`."""
    achieved = flops / seconds
    return {
        "clips_per_s": round(batch / seconds, 3),
        "tokens_per_s": round(batch * tokens / seconds, 1),
        "step_ms": round(seconds * 1e3, 3),
        "tflops": round(achieved / 1e12, 5),
        "mfu": round(achieved / peak, 5) if peak else None,
        "peak_tflops": round(peak / 1e12, 2) if peak else None,
    }


def _train_step(config: MAEConfig, cfg: DictConfig, opts: BenchOptions, model_name: str) -> Callable[[], None]:
    """Model, optimizer and full training step of fourd (as configured), the plain reference or the hf peer."""
    device, dtype, batch = opts.device, DTYPES[opts.dtype], cfg.data.batch_size
    optim = OptimConfig(**OmegaConf.to_container(cfg.optimizer, resolve=True))
    lr = scaled_lr(optim.base_lr, batch)
    video = random_video(config, batch, device, torch.float32)
    if model_name == "reference":
        model = build_reference(config, device)
        return train_step(lambda: model(video), model, reference_optimizer(model, optim, lr), device, dtype)
    if model_name == "hf":
        model = build_hf_videomae(config, device)
        betas, decay = tuple(optim.betas), optim.weight_decay
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=decay)  # torch's default
        return train_step(hf_loss(model, config, video), model, optimizer, device, dtype)
    fsdp = fsdp_config(cfg, opts.dtype)
    mesh = init_device_mesh(device.type, (1,)) if fsdp is not None else None  # FSDP2 over this one rank
    with torch.device(device):
        model = build_mae(config, device, mesh, fsdp, cfg.strategy.activation_checkpointing, cfg.compile)
    return train_step(lambda: model(video).loss, model, fourd_optimizer(model, optim, lr), device, dtype)


def bench_train(exp: str, cfg: DictConfig, opts: BenchOptions) -> dict[str, Any]:
    """Full pretraining steps of fourd (as configured) and, if asked, of the plain reference.

    With the reference or the hf peer all step in turn (ABAB...), so changing load on a shared machine hits them
    alike; each rate is the median step. With `opts.profile_rounds` each model's step is then profiled per kind
    of op, and against the hf peer the result says what speedup the same GEMMs and attention allow at most.
    """
    config, device, batch = mae_config(cfg.model), opts.device, cfg.data.batch_size
    peak = device_peak_flops(device)
    params = parameter_counts(config)["total"]
    sharded = cfg.strategy.name == "fsdp"
    with single_process_group(device) if sharded else contextlib.nullcontext():
        steps, memory = {}, {}
        peers = ["reference"] * opts.compare_reference + ["hf"] * opts.compare_hf
        for name in ["fourd", *peers]:
            steps[name], memory[name] = warm_up(lambda n=name: _train_step(config, cfg, opts, n), opts.warmup, device)
        seconds = {k: median(v) for k, v in time_rounds(steps, opts.steps, device, desc=" / ".join(steps)).items()}
        profiles = step_profile(steps, opts.profile_rounds, device) if opts.profile_rounds else None
        del steps
        free_memory(device)
    flops = 3 * mae_flops(config)["total"] * batch
    result = {
        "exp": exp,
        "mode": "train",
        "device": device_name(device),
        "dtype": opts.dtype,
        "batch": batch,
        "mask_ratio": config.mask_ratio,
        "attn": resolve_backend(config.encoder.attn_backend, device, DTYPES[opts.dtype]),
        "compile": bool(cfg.compile),
        "activation_checkpointing": bool(cfg.strategy.activation_checkpointing),
        "strategy": cfg.strategy.name,
        "params": params,
        "flops_per_step": flops,
        **throughput(seconds["fourd"], batch, prod(config.encoder.grid), flops, peak),
        "peak_mem_gb": round(memory["fourd"], 3),
        "reference_clips_per_s": None,
        "reference_peak_mem_gb": None,
        "speedup": None,
        "hf_clips_per_s": None,
        "hf_peak_mem_gb": None,
        "speedup_over_hf": None,
        "speedup_over_hf_bound": None,
        "profile": {name: {k: round(v, 6) for k, v in kinds.items()} for name, kinds in profiles.items()}
        if profiles
        else None,
        "steps": opts.steps,
        "warmup": opts.warmup,
    }
    if opts.compare_reference:
        result.update(
            reference_clips_per_s=round(batch / seconds["reference"], 3),
            reference_peak_mem_gb=round(memory["reference"], 3),
            speedup=round(seconds["reference"] / seconds["fourd"], 4),
        )
    if opts.compare_hf:
        result.update(
            hf_clips_per_s=round(batch / seconds["hf"], 3),
            hf_peak_mem_gb=round(memory["hf"], 3),
            speedup_over_hf=round(seconds["hf"] / seconds["fourd"], 4),
            speedup_over_hf_bound=round(speedup_bound(profiles["hf"]), 4) if profiles else None,
        )
    return result


def bench_forward(exp: str, cfg: DictConfig, opts: BenchOptions) -> dict[str, Any]:
    """Inference of the encoder alone on whole clips (no masking, no decoder), weights in the benchmark dtype."""
    config, device, batch, dtype = mae_config(cfg.model), opts.device, cfg.data.batch_size, DTYPES[opts.dtype]
    peak = device_peak_flops(device)

    def build() -> Callable[[], torch.Tensor]:
        encoder = build_inference_encoder(config.encoder, device, dtype, cfg.compile)
        video = random_video(config, batch, device, dtype)
        return lambda: encoder(video)

    with torch.no_grad():
        forward, memory = warm_up(build, opts.warmup, device)
        seconds = median(time_rounds({"forward": forward}, opts.steps, device, desc="forward")["forward"])
    del forward
    free_memory(device)
    params = parameter_counts(config)["encoder"]
    return {
        "exp": exp,
        "mode": "forward",
        "device": device_name(device),
        "dtype": opts.dtype,
        "batch": batch,
        "attn": resolve_backend(config.encoder.attn_backend, device, dtype),
        "compile": bool(cfg.compile),
        "params": params,
        **throughput(seconds, batch, prod(config.encoder.grid), encoder_flops(config) * batch, peak),
        "peak_mem_gb": round(memory, 3),
        "steps": opts.steps,
        "warmup": opts.warmup,
    }


def bench_loader(exp: str, cfg: DictConfig, opts: BenchOptions) -> dict[str, Any]:
    """Clips per second of the experiment's training loader (its dataset, workers, prefetch; pinned on CUDA); for
    real videos also the raw decode limit of the same videos with the same workers; and the clips per second that
    one GPU would consume training this experiment at `opts.mfu`."""
    data = {k: v for k, v in cfg.data.items() if k != "dataset"}
    datamodule = data_module(instantiate(cfg.data.dataset), **data)
    dataset = datamodule.dataset
    on_device = functools.partial(datamodule.on_after_batch_transfer, dataloader_idx=0)
    clips_per_s = loader_clips_per_s(datamodule.train_dataloader(), opts.steps, opts.warmup, opts.device, on_device)
    decode_limit = None
    if isinstance(dataset, VideoClipDataset):
        decode_limit = decode_limit_clips_per_s(
            dataset, datamodule.items_per_batch, datamodule.num_workers, opts.steps, opts.warmup
        )
    peak = opts.peak_flops or device_peak_flops(opts.device) or H100_BF16_DENSE_FLOPS
    demand = gpu_demand_clips_per_s(3 * mae_flops(mae_config(cfg.model))["total"], opts.mfu, peak)
    per_worker = clips_per_s / max(datamodule.num_workers, 1)
    return {
        "exp": exp,
        "mode": "loader",
        "device": device_name(opts.device),
        "dataset": cfg.data.dataset._target_,
        "batch": datamodule.batch_size,
        "repeated_sampling": getattr(dataset, "repeats", 1),
        "decode_short_side": getattr(dataset, "decode_short_side", None),
        "augment": getattr(dataset, "augment", "workers"),
        "num_workers": datamodule.num_workers,
        "prefetch_factor": datamodule.prefetch_factor,
        "pin_memory": datamodule.pin_memory,
        "clips_per_s": round(clips_per_s, 3),
        "decode_limit_clips_per_s": round(decode_limit, 3) if decode_limit else None,
        "of_decode_limit": round(clips_per_s / decode_limit, 3) if decode_limit else None,
        "gpu_demand_clips_per_s": round(demand, 1),
        "gpu_assumed": {"mfu": opts.mfu, "peak_tflops": round(peak / 1e12, 1)},
        "workers_to_keep_up": round(demand / per_worker, 1),
        "batches": opts.steps,
        "warmup": opts.warmup,
    }
