"""One probe run from a composed Hydra config: data, frozen backbone, a grid of readout heads trained at once,
the head chosen on the val split, its metrics on the test split, a picture, and one JSON line of results."""

from __future__ import annotations

import itertools
import json
import logging
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

from fourd.data.augment import AugmentedSplit, ProbeAugment
from fourd.data.sampler import ResumableSampler, SampleKey, SeededItems
from fourd.devices import compute_device
from fourd.errors import ConfigError
from fourd.files import content_key
from fourd.models.readout import ReadoutConfig
from fourd.models.vit import count_parameters
from fourd.probe.backbones import Backbone, load_backbone
from fourd.probe.features import FrozenFeatures, split_store
from fourd.probe.module import HeadSetting, LatestCheckpoint, ProbeHead, ProbeModule, predict_split
from fourd.probe.readout import ProbeReadout
from fourd.probe.store import StoredSplit
from fourd.probe.tasks import ClipGeometry, ProbeTask, build_task
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


def split_stores(
    cfg: DictConfig, backbone: Backbone, splits: dict[str, Dataset], identity: str
) -> dict[str, StoredSplit]:
    """Each split read lazily from disk: targets stored once per data, and with `cache_features` features once
    per (backbone, layer, data), computed on the device `accelerator` names."""
    device = compute_device(cfg.accelerator)
    features_key = None
    if backbone.reads_video and cfg.cache_features:
        features_key = content_key(
            backbone=backbone.identity, readout_depth=cfg.readout.readout_depth, data=identity, times="tokens"
        )
    targets_key = content_key(data=identity)
    return {
        name: split_store(
            Path(cfg.cache_dir),
            targets_key,
            features_key,
            name,
            dataset,
            backbone,
            cfg.readout.readout_depth,
            cfg.train.batch_size,
            device,
            int(cfg.cache_chunk_mb * 2**20),
        )
        for name, dataset in splits.items()
    }


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
        return {"train": SeededItems(data["train"], cfg.seed), "val": data["val"], "test": data["test"]}
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
    """Every head trained at once for `train.steps` steps on the same batches, checkpointed every
    `train.checkpoint_every` steps; with resume=auto a killed run continues from its last checkpoint exactly."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    resume = str(checkpoint) if cfg.resume == "auto" and checkpoint.exists() else None
    if resume:
        log.info(f"resuming the readout training from {checkpoint}")
    trainer = L.Trainer(
        max_steps=cfg.train.steps,
        accelerator=cfg.accelerator,
        devices=1,
        enable_checkpointing=False,
        callbacks=[LatestCheckpoint(checkpoint, cfg.train.checkpoint_every)],
        logger=CSVLogger(run_dir, name="csv", version=""),
        log_every_n_steps=10,
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
    )
    sampler = ResumableSampler(train, seed=cfg.seed, batch_size=cfg.train.batch_size)
    loader = DataLoader(
        train, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True, num_workers=cfg.train.num_workers
    )
    module = ProbeModule(heads, settings, cfg.train.warmup_steps, sampler, featurize)
    trainer.fit(module, loader, ckpt_path=resume)


def best_head(task: ProbeTask, val_metrics: list[dict[str, float]]) -> int:
    """The index of the head with the best headline metric on val."""
    metric, higher = task.headline
    values = [m[metric] for m in val_metrics]
    return values.index(max(values) if higher else min(values))


def write_picture(
    task: ProbeTask, head: ProbeHead | None, backbone: Backbone, dataset: Dataset, readout_depth: float, path: Path
) -> Path:
    """Predictions against ground truth on the first test clips (the prior's where there is no head)."""
    batch = next(iter(DataLoader(Subset(dataset, range(min(PICTURE_CLIPS, len(dataset)))), batch_size=PICTURE_CLIPS)))
    with torch.no_grad():
        if head is None:
            preds = task.predict_prior(batch)
        else:
            head.cpu().eval()
            backbone.to("cpu")
            batch_with_features = {**batch, "features": backbone.features(batch["video"], readout_depth)}
            preds = task.predict(head(batch_with_features), batch_with_features)
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
) -> tuple[ProbeHead, dict[str, float], dict[str, Any]]:
    """Train the head grid on train, choose on val, score the chosen head on test: (head, test metrics, record)."""
    settings = head_settings(cfg)
    featurize = None if cfg.cache_features else FrozenFeatures(backbone, cfg.readout.readout_depth)
    L.seed_everything(cfg.seed, workers=True)  # the heads and their batches: from the seed alone, cache or not
    heads = [build_head(cfg, geometry, backbone) for _ in settings]
    for head in heads:  # each head predicts moves away from the train prior, where it starts
        head.task.fit_prior(data["train"].stacked(cfg.train.prior_clips))
    train_heads(cfg, heads, settings, inputs["train"], run_dir, featurize)
    device = next(heads[0].parameters()).device
    val_loader = DataLoader(inputs["val"], cfg.train.batch_size)
    val_preds, val_targets = predict_split(heads, val_loader, device, featurize)
    val_metrics = [h.task.metrics(p, val_targets) for h, p in zip(heads, val_preds, strict=True)]
    chosen = best_head(heads[0].task, val_metrics)
    head = heads[chosen]
    test_loader = DataLoader(inputs["test"], cfg.train.batch_size)
    (test_preds,), test_targets = predict_split([head], test_loader, device, featurize)
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
    return head, head.task.metrics(test_preds, test_targets), record


def probe_prior(
    cfg: DictConfig, geometry: ClipGeometry, data: dict[str, StoredSplit]
) -> tuple[ProbeTask, dict[str, float], dict[str, Any]]:
    """The `trivial` baseline: the task's prior fitted on train targets, scored on test (task, metrics, record)."""
    task = probe_task(cfg, geometry)
    task.fit_prior(data["train"].stacked(cfg.train.prior_clips))
    test = data["test"].stacked()
    metrics = task.metrics(task.predict_prior(test), test)
    return task, metrics, {"chosen": None, "val": None, "grid": [], "readout_params": 0}


def probe(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train the head grid on train, choose on val, evaluate the chosen head on test (or score the `trivial`
    prior); write a picture and append one JSON line of results."""
    start = time.time()
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True)
    backbone = load_backbone(cfg.backbone, cfg.random_backbone, cfg.seed)
    splits, num_classes, identity = probe_splits(cfg)
    data = split_stores(cfg, backbone, splits, identity)
    geometry = clip_geometry(splits["test"], num_classes, backbone.width if backbone.reads_video else 0)
    inputs = readout_inputs(cfg, splits, data, geometry.height)
    if backbone.reads_video:
        head, metrics, record = probe_with_heads(cfg, geometry, backbone, data, inputs, run_dir)
        task = head.task
    else:
        head = None
        task, metrics, record = probe_prior(cfg, geometry, data)
    if cfg.pictures:
        depth = cfg.readout.readout_depth
        picture = write_picture(task, head, backbone, splits["test"], depth, run_dir / f"{task.name}.png")
        log.info(f"picture: {picture}")
        if isinstance(inputs["train"], AugmentedSplit):  # what the heads were trained on: clips and targets alike
            shown = [inputs["train"][SampleKey(0, i, i)] for i in range(min(PICTURE_CLIPS, len(inputs["train"])))]
            picture = write_picture(task, head, backbone, shown, depth, run_dir / f"{task.name}_augmented.png")
            log.info(f"picture of augmented train clips: {picture}")
    append_result(
        Path(cfg.results),
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "task": task.name,
            "data": cfg.probe_data.name,
            "backbone": backbone.name,
            "backbone_params": backbone.params,
            "seed": cfg.seed,
            **record,
            "metrics": metrics,
            "wall_time_s": round(time.time() - start, 1),
            "run_dir": str(run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
    )
    log.info(f"{task.name} probe of {backbone.name} (seed {cfg.seed}): {json.dumps(metrics)}")
    return metrics
