"""What a backbone's features hold, measured without a trained readout: closed-form and tiny probes on the same
cached features and splits as the 4D probes, scored on `val`. A readout can only read what these find (or more,
through attention); where every backbone scores alike here, no readout will separate them.

    python -m fourd.probe.content pixels random outputs/demo/encoder.safetensors [Hydra overrides of probe.yaml]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from fourd.conf import compose
from fourd.errors import cli
from fourd.models.depth_model import depth_from_patches
from fourd.probe.backbones import load_backbone
from fourd.probe.metrics.pose import relative_poses
from fourd.probe.run import clip_geometry, frozen_features, probe_splits, probe_task, split_stores
from fourd.probe.tasks.base import features_at, features_on_grid
from fourd.probe.tasks.depth import DepthTask
from fourd.probe.tasks.points import first_visible_queries

Splits = dict[str, dict[str, torch.Tensor]]


def ridge(x: torch.Tensor, y: torch.Tensor, penalty: float) -> torch.Tensor:
    """Weights W (with a bias row last) minimising |[x, 1] W - y|^2 + penalty |W|^2."""
    x = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    gram = x.T @ x + penalty * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, x.T @ y.double()).float()


def with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(*x.shape[:-1], 1)], -1)


def depth_patches(task: DepthTask, split: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, Q, D) features on the task's output-patch grid and (N, Q, patch) log-depth relative to the prior."""
    features = features_on_grid(split["features"], task.grid, task.shape[1:])
    relative = split["depth"].clamp_min(1e-3).log() - task.prior.clamp_min(1e-3).log()
    p0, p1, p2 = task.output_patch
    return features, rearrange(relative, "b (n0 p0) (n1 p1) (n2 p2) -> b (n0 n1 n2) (p0 p1 p2)", p0=p0, p1=p1, p2=p2)


def depth_abs_rel(task: DepthTask, relative: torch.Tensor, split: dict[str, torch.Tensor]) -> float:
    """AbsRel of (N, Q, patch) log-depth predictions relative to the prior."""
    log_depth = depth_from_patches(relative, task.shape, task.output_patch)[..., 0] + task.prior.clamp_min(1e-3).log()
    return task.metrics({"depth": log_depth.exp()}, split)["abs_rel"]


def depth_by_patch(task: DepthTask, data: Splits, penalty: float = 100.0) -> float:
    """Val AbsRel of a ridge regression from each patch's features and its place (one-hot) to its depth: one
    map for all patches, plus a bias per place."""
    x, y = depth_patches(task, data["train"])
    mean, std = x.flatten(0, 1).mean(0), x.flatten(0, 1).std(0) + 1e-6
    places = torch.eye(x.shape[1])

    def inputs(features: torch.Tensor) -> torch.Tensor:
        return torch.cat([(features - mean) / std, places.expand(len(features), -1, -1)], -1)

    weights = ridge(inputs(x).flatten(0, 1), y.flatten(0, 1), penalty)
    val_x, _ = depth_patches(task, data["val"])
    return depth_abs_rel(task, with_bias(inputs(val_x)) @ weights, data["val"])


def depth_from_clip(task: DepthTask, data: Splits, components: int = 32, penalty: float = 10.0) -> float:
    """Val AbsRel of a ridge regression, per output patch, from the clip's top principal components."""
    train = data["train"]["features"].float().flatten(1)
    mean = train.mean(0)
    _, scale, basis = torch.pca_lowrank(train - mean, q=components, center=False)

    def project(split: dict[str, torch.Tensor]) -> torch.Tensor:
        return (split["features"].float().flatten(1) - mean) @ basis / scale * len(train) ** 0.5

    _, y = depth_patches(task, data["train"])
    weights = ridge(project(data["train"]), y.flatten(1), penalty)
    return depth_abs_rel(task, (with_bias(project(data["val"])) @ weights).view(-1, *y.shape[1:]), data["val"])


def depth_by_patch_mlp(task: DepthTask, data: Splits, steps: int = 600, seed: int = 0) -> float:
    """Val AbsRel of a two-layer MLP from each patch's features (and a learned embedding of its place)."""
    x, y = depth_patches(task, data["train"])
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        width = 128
        place = nn.Parameter(torch.zeros(x.shape[1], width))
        inputs = nn.Sequential(nn.LayerNorm(x.shape[-1]), nn.Linear(x.shape[-1], width))
        mlp = nn.Sequential(nn.GELU(), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, y.shape[-1]))
    parameters = [place, *inputs.parameters(), *mlp.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.05)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (32,), generator=generator)
        loss = (mlp(inputs(x[batch]) + place) - y[batch]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    val_x, _ = depth_patches(task, data["val"])
    with torch.no_grad():
        return depth_abs_rel(task, mlp(inputs(val_x) + place), data["val"])


def points_by_matching(task: Any, data: Splits) -> float:
    """Val AJ of tracking each query point to the soft-argmax of its features' cosine match in every frame."""
    split = data["val"]
    g = task.geometry
    features = split["features"].float()
    features = (features - features.mean((0, 1, 2))) / features.std((0, 1, 2))
    queries, _ = first_visible_queries(split["occluded"], split["tracks"])
    looks = F.normalize(features_at(features, queries, (g.num_frames, g.height, g.width)), dim=-1)
    similarity = torch.einsum("bpd,btnd->bptn", looks, F.normalize(features, dim=-1))
    t, n = features.shape[1], features.shape[2]
    h = round((n * g.height / g.width) ** 0.5)
    ys, xs = torch.meshgrid(
        (torch.arange(h) + 0.5) * g.height / h, (torch.arange(n // h) + 0.5) * g.width / (n // h), indexing="ij"
    )
    centres = torch.stack([xs.flatten(), ys.flatten()], -1)
    tracks = torch.einsum("bptn,nc->bptc", (similarity / 0.02).softmax(-1), centres)
    tracks = tracks.repeat_interleave(g.num_frames // t, dim=2)  # each token time covers its frames
    return task.metrics({**task.predict_prior(split), "tracks": tracks}, split)["average_jaccard"]


def pose_explained(data: Splits, penalty: float = 1e4) -> tuple[float, float]:
    """Share of the variance of the last frame's rotation and translation (relative to frame 0) that a kernel
    ridge regression from the whole clip's features explains on val: (rotation, translation)."""

    def inputs_targets(split: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        pose = relative_poses(split["world_to_camera"])[:, -1]
        return split["features"].float().flatten(1), torch.cat([pose[:, :3, :3].flatten(1), pose[:, :3, 3]], 1)

    x, y = inputs_targets(data["train"])
    val_x, val_y = inputs_targets(data["val"])
    mean, std = x.mean(0), x.std(0) + 1e-3
    x, val_x = (x - mean) / std, (val_x - mean) / std
    target_mean = y.mean(0)
    dual = torch.linalg.solve(
        (x @ x.T).double() + penalty * torch.eye(len(x), dtype=torch.double), (y - target_mean).double()
    )
    predicted = (val_x @ x.T).double() @ dual + target_mean
    explained = 1 - ((predicted - val_y) ** 2).sum(0) / ((val_y - val_y.mean(0)) ** 2).sum(0)
    return float(explained[[0, 4, 8]].mean()), float(explained[9:].mean())


def measure(backbone: str, overrides: list[str]) -> dict[str, float]:
    """Every measurement for one backbone, on the probe config's data (`probe_data`, its cache)."""
    results = {}
    for task_name in ("depth", "points", "pose"):
        cfg = compose("probe", [f"probe={task_name}", f"backbone={backbone}", *overrides])
        loaded = load_backbone(cfg.backbone, cfg.random_backbone, cfg.seed, cfg.readout.readout_depth)
        splits, num_classes, identity = probe_splits(cfg)
        stores = split_stores(cfg, loaded, frozen_features(cfg, loaded, splits["test"]), splits, identity)
        data = {k: v.stacked(features=True) for k, v in stores.items()}
        task = probe_task(cfg, clip_geometry(splits["test"], num_classes, loaded.width))
        task.fit_prior(data["train"])
        if task_name == "depth":
            results["depth, patch ridge"] = depth_by_patch(task, data)
            results["depth, clip ridge"] = depth_from_clip(task, data)
            results["depth, patch MLP"] = depth_by_patch_mlp(task, data)
            results["depth, prior"] = task.metrics(task.predict_prior(data["val"]), data["val"])["abs_rel"]
        elif task_name == "points":
            results["points AJ, matching"] = points_by_matching(task, data)
            results["points AJ, prior"] = task.metrics(task.predict_prior(data["val"]), data["val"])["average_jaccard"]
        else:
            results["pose rotation R²"], results["pose translation R²"] = pose_explained(data)
    return results


def split_arguments(items: list[str]) -> tuple[list[str], list[str]]:
    """(backbones, Hydra overrides) of the command line, which may mix them."""
    return [a for a in items if "=" not in a], [a for a in items if "=" in a]


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.probe.content", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "items",
        nargs="+",
        metavar="BACKBONE|KEY=VALUE",
        help="backbones (trivial, pixels, random or a fourd safetensors file) and Hydra overrides of probe.yaml",
    )
    args = parser.parse_args(argv)
    backbones, overrides = split_arguments(args.items)
    if not backbones:
        parser.error("name at least one backbone")
    rows = {backbone: measure(backbone, overrides) for backbone in backbones}
    columns = list(next(iter(rows.values())))
    print("| backbone | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for backbone, values in rows.items():
        print(f"| {backbone} | " + " | ".join(f"{values[c]:.3f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
