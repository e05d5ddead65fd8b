"""Assemble a probe run from a composed Hydra config: world data, frozen backbone, task, readout, results."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from fourd.files import content_key
from fourd.models.readout import ReadoutConfig
from fourd.models.vit import count_parameters
from fourd.probe.backbones import Backbone, load_backbone
from fourd.probe.features import FeatureDataset, cached_features, compute_features
from fourd.probe.module import ProbeModule
from fourd.probe.tasks import ClipGeometry, build_task

log = logging.getLogger(__name__)


def clip_geometry(dataset: Dataset, num_classes: int) -> ClipGeometry:
    """Clip shapes from the first item (datasets without tracks or boxes have none)."""
    item = dataset[0]
    _, t, h, w = item["video"].shape
    return ClipGeometry(
        t, h, w, num_points=len(item.get("tracks", [])), num_objects=len(item.get("boxes", [])), num_classes=num_classes
    )


def probe_splits(cfg: DictConfig) -> tuple[Dataset, Dataset, int, str]:
    """Train and test datasets, their number of classes, and a string identifying the data (for the cache)."""
    d = cfg.probe_data
    train, test = instantiate(d.train), instantiate(d.test)
    identity = json.dumps(OmegaConf.to_container(d, resolve=True), sort_keys=True)
    return train, test, getattr(test, "num_classes", 0), identity


def with_cached_features(
    cfg: DictConfig, backbone: Backbone, splits: dict[str, Dataset], data_identity: str
) -> dict[str, Dataset]:
    """The splits with backbone features computed once per (backbone, layer, data) and read from disk after."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    key = content_key(backbone=backbone.identity, readout_depth=cfg.readout.readout_depth, data=data_identity)
    cached = {}
    for split, dataset in splits.items():
        path = Path(cfg.cache_dir) / "features" / key / f"{split}.safetensors"
        features = cached_features(
            path,
            lambda d=dataset: compute_features(
                backbone.encoder, d, cfg.readout.readout_depth, cfg.train.batch_size, device
            ),
        )
        cached[split] = FeatureDataset(dataset, features)
    return cached


def write_pictures(module: ProbeModule, dataset: Dataset, out_dir: Path) -> Path:
    """Predictions against ground truth on the first test clips, through the backbone (video needed)."""
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    on_device = {k: v.to(module.device) for k, v in batch.items() if torch.is_tensor(v)}
    module.eval()
    with torch.no_grad():
        preds = module.task.predict(module(on_device), on_device)
    return module.task.picture({k: v.cpu() for k, v in preds.items()}, batch, out_dir / f"{module.task.name}.png")


def append_result(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def probe(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train a probe on the train split, evaluate on the test split, append one JSON line of results."""
    start = time.time()
    L.seed_everything(cfg.seed, workers=True)
    backbone = load_backbone(cfg.backbone, cfg.random_backbone, cfg.seed)
    train, test, num_classes, data_identity = probe_splits(cfg)
    splits = {"train": train, "test": test}
    if cfg.cache_features:
        splits = with_cached_features(cfg, backbone, splits, data_identity)
    geometry = clip_geometry(test, num_classes)
    r = cfg.readout
    task = build_task(cfg.probe.task, geometry, r.width, **OmegaConf.to_container(cfg.probe.options))
    readout = ReadoutConfig(
        width=r.width,
        heads=r.heads,
        num_queries=task.num_queries,
        num_classes=task.outputs_per_query,
        mlp=4 * r.width,
        num_frames=geometry.num_frames,
        readout_depth=r.readout_depth,
        encoder_width=backbone.encoder.config.width,
    )
    module = ProbeModule(task, readout, backbone.encoder, cfg.train.lr, cfg.train.weight_decay, cfg.train.warmup_steps)
    trainer = L.Trainer(
        max_steps=cfg.train.steps,
        accelerator=cfg.accelerator,
        devices=1,
        logger=CSVLogger(run_dir, name="csv", version=""),
        enable_checkpointing=False,
        log_every_n_steps=10,
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(
        module,
        DataLoader(
            splits["train"],
            batch_size=cfg.train.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=cfg.train.num_workers,
        ),
    )
    trainer.test(module, DataLoader(splits["test"], batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers))
    metrics = module.test_metrics
    if cfg.pictures:
        log.info(f"picture: {write_pictures(module, test, run_dir)}")
    append_result(
        Path(cfg.results),
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "task": task.name,
            "data": cfg.probe_data.name,
            "backbone": backbone.name,
            "backbone_params": backbone.params,
            "readout_params": count_parameters(module.readout) + count_parameters(task),
            "metrics": metrics,
            "wall_time_s": round(time.time() - start, 1),
            "run_dir": str(run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
    )
    log.info(f"{task.name} probe of {backbone.name}: {json.dumps(metrics)}")
    return metrics
