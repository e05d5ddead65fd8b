"""Wall-clock timing of repeated calls, peak memory, and the device's measured dense bf16 matmul peak."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

import torch
from tqdm import tqdm


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on CUDA; nothing to wait for elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(
    fns: dict[str, Callable[[], object]], rounds: int, device: torch.device, desc: str = "timing"
) -> dict[str, list[float]]:
    """Seconds of each call when every function runs once per round in turn (ABAB...): load changes hit all alike."""
    if rounds < 1:
        raise ValueError(f"need at least one timed round, got {rounds}")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in tqdm(range(rounds), desc=desc, file=sys.stderr, leave=False):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def memory_in_use(device: torch.device) -> int:
    """Bytes allocated now on CUDA; 0 elsewhere (the CPU peak below is the whole process's)."""
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak; the CPU peak (process RSS) cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int:
    """Peak bytes: CUDA max allocated since the last reset; on CPU the process's peak RSS so far.

    The CPU number covers the whole process (interpreter, libraries, every model built), not one phase.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def warm_up(build: Callable[[], Callable[[], object]], warmup: int, device: torch.device) -> tuple[Callable, float]:
    """Build a step function, run it `warmup` times, then once more: (the step, that call's peak memory in GB).

    On CUDA the peak counts only memory beyond what was allocated before `build`, so a model built
    earlier and still resident does not count; on CPU it is the process's peak RSS (see `peak_memory`).
    """
    resident = memory_in_use(device)
    step = build()
    for _ in range(warmup):
        step()
    reset_peak_memory(device)
    step()
    synchronize(device)
    return step, (peak_memory(device) - resident) / 1e9


def matmul_peak_flops(device: torch.device, size: int = 8192, repeats: int = 10, trials: int = 5) -> float:
    """Best achieved FLOP/s of large square bf16 matmuls on `device` over several trials: the MFU denominator."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b  # warm up kernels and clocks
    best = 0.0
    for _ in range(trials):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
    return best
