"""One probe run from a composed Hydra config: data, frozen backbone, a grid of readout heads trained at once,
the head chosen on the val split, its metrics on the test split, a picture, and one JSON line of results."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Subset

from fourd.conf.checks import check_intervals, check_switches, check_whole_numbers
from fourd.data.augment import AugmentedSplit, ProbeAugment
from fourd.data.sampler import KeyedItems, ResumableSampler, SampleKey, SeededItems
from fourd.devices import cluster_environment, rank_device
from fourd.distributed import gather_objects, is_distributed, rank_and_world_size
from fourd.errors import ConfigError, FourdError
from fourd.files import content_key
from fourd.models.readout import ReadoutConfig
from fourd.models.vit import count_parameters
from fourd.probe.backbones import Backbone, load_backbone
from fourd.probe.features import FrozenFeatures, split_store
from fourd.probe.module import HeadSetting, LatestCheckpoint, Predict, ProbeHead, ProbeModule, score_split
from fourd.probe.readout import ProbeReadout
from fourd.probe.sharded import LockstepFeatures, join_process_group, shard_backbone
from fourd.probe.store import StoredSplit
from fourd.probe.tasks import ClipGeometry, ProbeTask, build_task
from fourd.probe.tasks.base import Scores, concat_scores
from fourd.quiet import quiet_lightning

log = logging.getLogger(__name__)
PICTURE_CLIPS = 4


def clip_geometry(dataset: Dataset, num_classes: int, feature_width: int) -> ClipGeometry:
    """Clip shapes from the first item (datasets without tracks or boxes have none)."""
    item = dataset[0]
    _, t, h, w = item["video"].shape
    return ClipGeometry(
        t,
        h,
        w,
        num_points=len(item.get("tracks", [])),
        num_objects=len(item.get("boxes", [])),
        num_classes=num_classes,
        feature_width=feature_width,
    )


def probe_splits(cfg: DictConfig) -> tuple[dict[str, Dataset], int, str]:
    """Train, val and test datasets, the number of classes, and a string identifying the data (for the cache).

    Data without a `val` split gives the last `val_fraction` of its train split to val. The classes are the train
    split's; a test split with another class list is a ConfigError (its indices would mean other classes).
    """
    d = cfg.probe_data
    splits = {"train": instantiate(d.train), "test": instantiate(d.test)}
    classes = [getattr(splits[name], "classes", None) for name in ("train", "test")]
    if classes[0] != classes[1]:
        raise ConfigError("probe_data: the train and test splits have different class lists; give both the same")
    num_classes = getattr(splits["train"], "num_classes", 0)
    identity: dict[str, Any] = {"data": OmegaConf.to_container(d, resolve=True)}
    if "val" in d:
        splits["val"] = instantiate(d.val)
    else:
        n = len(splits["train"])
        held_out = max(1, round(n * cfg.val_fraction))
        splits["val"] = Subset(splits["train"], range(n - held_out, n))
        splits["train"] = Subset(splits["train"], range(n - held_out))
        identity["val_fraction"] = cfg.val_fraction
    return splits, num_classes, json.dumps(identity, sort_keys=True)


def launched_rank() -> tuple[int, int]:
    """(rank, world size) of this process as its launcher (torchrun, SLURM) set them; (0, 1) when alone."""
    environment = cluster_environment()
    return (environment.global_rank(), environment.world_size()) if environment else (0, 1)


def is_first_rank() -> bool:
    """Whether this process writes the run's results and pictures (the only one, or rank 0)."""
    return (rank_and_world_size() if is_distributed() else launched_rank())[0] == 0


def frozen_features(cfg: DictConfig, backbone: Backbone, clips: Dataset) -> FrozenFeatures:
    """The backbone placed on the device `accelerator` names (this rank's, under a launcher), or with
    `shard_backbone` sharded over every rank; and the features it computes of clips shaped as `clips`'."""
    device = rank_device(cfg.accelerator)
    if not cfg.shard_backbone:
        backbone.to(device)
        return FrozenFeatures(backbone, device)
    world_size = cfg.devices * cfg.num_nodes
    if world_size < 2:
        raise ConfigError("shard_backbone=true shards over devices x num_nodes > 1 processes; this run has one")
    join_process_group(device, world_size)
    shard_backbone(backbone, device)
    return LockstepFeatures(backbone, tuple(clips[0]["video"].shape), device)


def split_stores(
    cfg: DictConfig,
    backbone: Backbone,
    featurize: FrozenFeatures | None,
    splits: dict[str, Dataset],
    identity: str,
) -> dict[str, StoredSplit]:
    """Each split read lazily from disk: targets stored once per data, and with `cache_features` features by
    `featurize` once per (backbone, layer, data)."""
    features_key = None
    if backbone.reads_video and cfg.cache_features:
        features_key = content_key(
            backbone=backbone.identity, readout_depth=backbone.readout_depth, data=identity, times="tokens"
        )
    targets_key = content_key(data=identity)
    rank, world_size = launched_rank()
    return {
        name: split_store(
            Path(cfg.cache_dir),
            targets_key,
            features_key,
            name,
            dataset,
            featurize,
            cfg.train.batch_size,
            int(cfg.cache_chunk_mb * 2**20),
            rank,
            world_size,
        )
        for name, dataset in splits.items()
    }


PROBE_WHOLE_NUMBERS = {  # key: the smallest value that means something
    "seed": 0,
    "devices": 1,
    "num_nodes": 1,
    "readout.width": 1,
    "readout.heads": 1,
    "train.warmup_steps": 0,
    "train.num_workers": 0,
    "train.checkpoint_every": 0,
    "train.prior_clips": 1,
}
PROBE_SWITCHES = ("shard_backbone", "cache_features", "pictures")
PROBE_INTERVALS = {
    "readout.readout_depth": (0.0, 1.0, "(]"),
    "val_fraction": (0.0, 1.0, "()"),
    "cache_chunk_mb": (0.0, math.inf, "()"),
}


def check_settings(cfg: DictConfig) -> None:
    """Refuse, before anything is computed, a setting that cannot work (named by its key) and a probe whose result
    would not be earned or could not be kept: no training step, no learning rate or a non-positive one, and a
    results file that cannot be written."""
    check_whole_numbers(cfg, PROBE_WHOLE_NUMBERS)
    check_switches(cfg, PROBE_SWITCHES)
    check_intervals(cfg, PROBE_INTERVALS)
    if cfg.readout.width % cfg.readout.heads:
        raise ConfigError(f"readout.width={cfg.readout.width} is not divisible by readout.heads={cfg.readout.heads}")
    t = cfg.train
    if not isinstance(t.steps, int) or t.steps < 1:
        raise ConfigError(f"train.steps={t.steps!r}: at least 1 (an untrained head is the trivial baseline)")
    if not isinstance(t.batch_size, int) or t.batch_size < 1:
        raise ConfigError(f"train.batch_size={t.batch_size!r}: at least 1")
    if not t.lrs or not all(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0 for lr in t.lrs):
        raise ConfigError(f"train.lrs={list(t.lrs)}: one or more positive learning rates")
    if not t.weight_decays or not all(isinstance(wd, (int, float)) and wd >= 0 for wd in t.weight_decays):
        raise ConfigError(f"train.weight_decays={list(t.weight_decays)}: one or more numbers >= 0")
    results = Path(cfg.results).absolute()
    if results.is_dir():
        raise ConfigError(f"results={cfg.results} is a folder: name a .jsonl file")
    existing = next(p for p in [results, *results.parents] if p.exists())
    if existing != results and not existing.is_dir():
        raise ConfigError(f"results={cfg.results}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"results={cfg.results}: {existing} is not writable")


OPERATIONAL = ("num_workers", "checkpoint_every")  # train.* that change how a probe runs, never what it measures


def protocol_key(cfg: DictConfig) -> str:
    """A short hash of everything that defines the measurement but the seed and the backbone: the data (its
    settings as given, world seed and splits included; not where it is cached), the val share, the task and its
    options, the readout, the training settings and the feature path (cache_features). Results pool seeds within
    one protocol only."""
    return content_key(
        data=OmegaConf.to_container(cfg.probe_data, resolve=False),  # ${cache_dir} stays a name: not the measurement
        val_fraction=cfg.val_fraction,
        probe=OmegaConf.to_container(cfg.probe, resolve=True),
        readout=OmegaConf.to_container(cfg.readout, resolve=True),
        train={k: v for k, v in OmegaConf.to_container(cfg.train, resolve=True).items() if k not in OPERATIONAL},
        cache_features=cfg.cache_features,
    )


def check_earned(metrics: dict[str, float]) -> None:
    """Refuse to record metrics that are not numbers (a diverged head)."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise FourdError(f"the test metrics are not finite ({bad}): nothing recorded (try smaller train.lrs)")


def head_settings(cfg: DictConfig) -> list[HeadSetting]:
    """The grid of readout heads: every learning rate with every weight decay."""
    return [HeadSetting(lr, wd) for lr, wd in itertools.product(cfg.train.lrs, cfg.train.weight_decays)]


def probe_task(cfg: DictConfig, geometry: ClipGeometry) -> ProbeTask:
    """The configured task, sized for the clips and the readout width."""
    options = OmegaConf.to_container(cfg.probe.options)
    return build_task(cfg.probe.task, geometry, cfg.readout.width, cfg.readout.style, **options)


def build_head(cfg: DictConfig, geometry: ClipGeometry, backbone: Backbone) -> ProbeHead:
    """A fresh task and probe readout sized for the clips and the backbone's features."""
    r = cfg.readout
    task = probe_task(cfg, geometry)
    grid = backbone.token_grid((geometry.num_frames, geometry.height, geometry.width))
    config = ReadoutConfig(
        width=r.width,
        heads=r.heads,
        num_queries=task.num_queries,
        num_classes=task.outputs_per_query,
        mlp=4 * r.width,
        num_frames=grid[0],  # the features' token times
        readout_depth=r.readout_depth,
        encoder_width=backbone.width,
    )
    return ProbeHead(task, ProbeReadout(config, grid[1:], spatial=r.style != "paper"))


def readout_inputs(
    cfg: DictConfig, splits: dict[str, Dataset], data: dict[str, StoredSplit], size: int
) -> dict[str, Dataset]:
    """What the heads read: stored features (cache_features) or the clips themselves, whose features are
    computed in each step; train items are read by a ResumableSampler's keys, augmented if `train.augment`."""
    augment = ProbeAugment.from_config(cfg.train.augment)
    if cfg.cache_features:
        if augment is not None:
            raise ConfigError("train.augment needs cache_features=false: cached features are computed once")
        return {"train": KeyedItems(data["train"]), "val": data["val"], "test": data["test"]}
    if augment is None:
        train = SeededItems(splits["train"], cfg.seed)
    else:
        train = AugmentedSplit(splits["train"], size, augment, cfg.seed)
    return {"train": train, "val": splits["val"], "test": splits["test"]}


def train_heads(
    cfg: DictConfig,
    heads: list[ProbeHead],
    settings: list[HeadSetting],
    train: Dataset,
    run_dir: Path,
    featurize: FrozenFeatures | None = None,
) -> None:
    """Every head trained at once for `train.steps` steps on the same batches (data-parallel over `devices` x
    `num_nodes`, `train.batch_size` clips in all), checkpointed every `train.checkpoint_every` steps; with
    resume=auto a killed run continues from its last checkpoint exactly."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    resume = str(checkpoint) if cfg.resume == "auto" and checkpoint.exists() else None
    if resume:
        log.info(f"resuming the readout training from {checkpoint}")
    trainer = L.Trainer(
        max_steps=cfg.train.steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if cfg.devices * cfg.num_nodes > 1 else "auto",
        enable_checkpointing=False,
        callbacks=[LatestCheckpoint(checkpoint, cfg.train.checkpoint_every)],
        logger=CSVLogger(run_dir, name="csv", version=""),
        log_every_n_steps=10,
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
    )
    if cfg.train.batch_size % trainer.world_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split over {trainer.world_size} devices")
    batch_size = cfg.train.batch_size // trainer.world_size
    sampler = ResumableSampler(train, trainer.world_size, trainer.global_rank, cfg.seed, batch_size)
    workers = cfg.train.num_workers
    loader = DataLoader(train, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers)
    module = ProbeModule(heads, settings, cfg.train.warmup_steps, sampler, featurize)
    trainer.fit(module, loader, ckpt_path=resume)
    if featurize is not None:
        featurize.done()


def scores_gathered(
    scorers: list[tuple[ProbeTask, Predict]],
    dataset: Dataset,
    batch_size: int,
    featurize: FrozenFeatures | None = None,
    device: torch.device | str = "cpu",
) -> list[Scores]:
    """`score_split` of a whole split, every rank scoring one contiguous block, gathered in order: every rank holds
    the clip scores one device would (metrics then per video over all of them, never a mean of rank means)."""
    rank, world_size = rank_and_world_size()  # no group for the trivial baseline: each rank scores the whole split
    block = -(-len(dataset) // world_size)
    mine = Subset(dataset, range(rank * block, min((rank + 1) * block, len(dataset))))
    scores = score_split(scorers, DataLoader(mine, batch_size), device, featurize) if mine else None
    if featurize is not None:  # a rank with fewer clips joins the others' forwards of a sharded backbone
        featurize.done()
    parts = [p for p in gather_objects(scores) if p is not None]  # ranks past the end of a small split held nothing
    return [concat_scores([p[i] for p in parts]) for i in range(len(scorers))]


def head_scores(
    heads: list[ProbeHead], dataset: Dataset, cfg: DictConfig, featurize: FrozenFeatures | None
) -> list[Scores]:
    """Every head's clip scores on a split (`scores_gathered`), the heads in eval mode on their device."""
    for head in heads:
        head.eval()
    device = next(heads[0].parameters()).device
    return scores_gathered([(h.task, h.predict) for h in heads], dataset, cfg.train.batch_size, featurize, device)


def best_head(task: ProbeTask, val_metrics: list[dict[str, float]]) -> int:
    """The index of the head with the best headline metric on val."""
    metric, higher = task.headline
    values = [m[metric] for m in val_metrics]
    return values.index(max(values) if higher else min(values))


def picture_batch(clips: Dataset, featurize: FrozenFeatures | None, stored: Dataset | None = None) -> dict[str, Any]:
    """The first clips a picture shows, with their features where a head reads them: read from `stored` (the
    split's cached features), else computed (on every rank: a sharded backbone needs them all)."""
    shown = range(min(PICTURE_CLIPS, len(clips)))
    batch = next(iter(DataLoader(Subset(clips, shown), batch_size=PICTURE_CLIPS)))
    if stored is not None:
        batch["features"] = torch.stack([stored[i]["features"] for i in shown])
    elif featurize is not None:
        batch["features"] = featurize(batch).cpu()
        featurize.done()
    return batch


def write_picture(task: ProbeTask, head: ProbeHead | None, batch: dict[str, Any], path: Path) -> Path:
    """Predictions against ground truth on a picture batch (the prior's where there is no head)."""
    with torch.no_grad():
        if head is None:
            preds = task.predict_prior(batch)
        else:
            preds = head.cpu().eval().predict(batch)
    return task.picture({k: v.cpu() for k, v in preds.items()}, batch, path)


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line in one write; after a line cut short (a run killed while writing), on a new line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        start = b""
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            start = b"" if f.read(1) == b"\n" else b"\n"
        f.write(start + json.dumps(record).encode() + b"\n")


def probe_with_heads(
    cfg: DictConfig,
    geometry: ClipGeometry,
    backbone: Backbone,
    data: dict[str, StoredSplit],
    inputs: dict[str, Dataset],
    run_dir: Path,
    featurize: FrozenFeatures | None,
) -> tuple[ProbeHead, dict[str, float], dict[str, Any]]:
    """Train the head grid on train, choose on val, score the chosen head on test: (head, test metrics, record).
    `featurize` computes the features in each step (no cached features), else None."""
    settings = head_settings(cfg)
    L.seed_everything(cfg.seed, workers=True)  # the heads and their batches: from the seed alone, cache or not
    heads = [build_head(cfg, geometry, backbone) for _ in settings]
    prior_targets = data["train"].stacked(cfg.train.prior_clips)
    for head in heads:  # each head predicts moves away from the train prior, where it starts
        head.task.fit_prior(prior_targets)
    train_heads(cfg, heads, settings, inputs["train"], run_dir, featurize)
    val_scores = head_scores(heads, inputs["val"], cfg, featurize)
    val_metrics = [h.task.summarize(s) for h, s in zip(heads, val_scores, strict=True)]
    chosen = best_head(heads[0].task, val_metrics)
    head = heads[chosen]
    (test_scores,) = head_scores([head], inputs["test"], cfg, featurize)
    metric = head.task.headline[0]
    record = {
        "chosen": {"lr": settings[chosen].lr, "weight_decay": settings[chosen].weight_decay},
        "val": {metric: val_metrics[chosen][metric]},
        "grid": [
            {"lr": s.lr, "weight_decay": s.weight_decay, f"val_{metric}": m[metric]}
            for s, m in zip(settings, val_metrics, strict=True)
        ],
        "readout_params": count_parameters(head),
    }
    return head, head.task.summarize(test_scores), record


def probe_prior(
    cfg: DictConfig, geometry: ClipGeometry, data: dict[str, StoredSplit]
) -> tuple[ProbeTask, dict[str, float], dict[str, Any]]:
    """The `trivial` baseline: the task's prior fitted on train targets, scored on test (task, metrics, record)."""
    task = probe_task(cfg, geometry)
    task.fit_prior(data["train"].stacked(cfg.train.prior_clips))
    (scores,) = scores_gathered([(task, task.predict_prior)], data["test"], cfg.train.batch_size)
    metrics = task.summarize(scores)
    return task, metrics, {"chosen": None, "val": None, "grid": [], "readout_params": 0}


def probe(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train the head grid on train, choose on val, evaluate the chosen head on test (or score the `trivial`
    prior); write a picture and append one JSON line of results."""
    start = time.time()
    check_settings(cfg)
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True)
    backbone = load_backbone(cfg.backbone, cfg.random_backbone, cfg.seed, cfg.readout.readout_depth)
    splits, num_classes, identity = probe_splits(cfg)
    if backbone.reads_video and len(splits["train"]) < cfg.train.batch_size:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size}, but the train split has {len(splits['train'])} clips: "
            "no full batch to train on"
        )
    geometry = clip_geometry(splits["test"], num_classes, backbone.width if backbone.reads_video else 0)
    featurize = frozen_features(cfg, backbone, splits["test"]) if backbone.reads_video else None
    data = split_stores(cfg, backbone, featurize, splits, identity)
    inputs = readout_inputs(cfg, splits, data, geometry.height)
    if backbone.reads_video:
        on_the_fly = None if cfg.cache_features else featurize
        head, metrics, record = probe_with_heads(cfg, geometry, backbone, data, inputs, run_dir, on_the_fly)
        task = head.task
    else:
        head = None
        task, metrics, record = probe_prior(cfg, geometry, data)
    check_earned(metrics)
    log.info(f"{task.name} probe of {backbone.name} (seed {cfg.seed}): {json.dumps(metrics)}")
    pictures = {}  # name: (what it shows, its batch)
    if cfg.pictures:
        stored = data["test"] if backbone.reads_video and cfg.cache_features else None
        pictures[task.name] = ("picture", picture_batch(splits["test"], featurize, stored))
        if isinstance(inputs["train"], AugmentedSplit):  # what the heads were trained on: clips and targets alike
            shown = [inputs["train"][SampleKey(0, i, i)] for i in range(min(PICTURE_CLIPS, len(inputs["train"])))]
            pictures[f"{task.name}_augmented"] = ("picture of augmented train clips", picture_batch(shown, featurize))
    if not is_first_rank():
        return metrics
    for name, (what, batch) in pictures.items():
        log.info(f"{what}: {write_picture(task, head, batch, run_dir / f'{name}.png')}")
    append_result(
        Path(cfg.results),
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "task": task.name,
            "data": cfg.probe_data.name,
            "backbone": backbone.name,
            "backbone_params": backbone.params,
            "seed": cfg.seed,
            "protocol": protocol_key(cfg),
            **record,
            "metrics": metrics,
            "wall_time_s": round(time.time() - start, 1),
            "run_dir": str(run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
    )
    return metrics
