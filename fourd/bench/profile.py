"""Where a training step's time goes: the profiler's self time per kind of op (GEMMs, attention, convolutions, the
rest), and the most any step could gain on a peer that runs the same GEMMs and attention."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from fourd.bench.timing import synchronize

KINDS: tuple[str, ...] = ("gemm", "attention", "conv", "other")
GEMM_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})


def op_kind(name: str) -> str:
    """The kind of a profiled aten op: 'gemm', 'attention' (any fused attention kernel), 'conv' or 'other'."""
    if name in GEMM_OPS:
        return "gemm"
    if "attention" in name:  # SDPA's flash/efficient/cuDNN kernels and xformers' memory-efficient one
        return "attention"
    if "conv" in name:
        return "conv"
    return "other"


def step_profile(
    fns: dict[str, Callable[[], object]], rounds: int, device: torch.device
) -> dict[str, dict[str, float]]:
    """Seconds per call spent in each kind of op, for each function, the functions profiled in turn (ABAB...).

    Self time of each op: on CUDA the kernels' device time, elsewhere the host time, so on CPU the kinds add up
    to the step.
    """
    if rounds < 1:
        raise ValueError(f"need at least one profiled round, got {rounds}")
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    seconds: dict[str, Counter] = {name: Counter() for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            with profile(activities=activities) as prof:
                fn()
                synchronize(device)
            for event in prof.key_averages():
                micros = event.self_device_time_total if cuda else event.self_cpu_time_total
                seconds[name][op_kind(event.key)] += micros / 1e6 / rounds
    return {name: {kind: kinds[kind] for kind in KINDS} for name, kinds in seconds.items()}


def speedup_bound(peer: dict[str, float]) -> float:
    """The speedup over `peer` of a step that ran only the peer's GEMMs and attention, as fast as the peer runs
    them, and nothing else: what doing the same FLOPs with the same kernels can reach at most."""
    if peer["gemm"] + peer["attention"] <= 0:
        raise ValueError(f"the peer's profile holds no GEMM or attention time: {peer}")
    return sum(peer.values()) / (peer["gemm"] + peer["attention"])
