"""4D probes end to end on a tiny 4D world: every task trains, evaluates, draws, and reports."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fourd.conf import compose
from fourd.errors import ConfigError
from fourd.models.vit import count_parameters
from fourd.probe.backbones import BackboneError, load_backbone
from fourd.probe.features import stack_targets
from fourd.probe.run import check_settings, probe, protocol_key
from fourd.report import main as report_main
from tests.helpers import REPO, assert_quiet
from tests.helpers.configs import composed
from tests.helpers.scannet import write_scannet_scene

TINY = [
    "random_backbone.width=32",
    "random_backbone.depth=2",
    "random_backbone.heads=2",
    "random_backbone.mlp=64",
    "random_backbone.num_frames=4",
    "random_backbone.image_size=32",
    "train.steps=4",
    "train.batch_size=4",
    "readout.width=32",
    "readout.heads=2",
]
TINY_WORLD = [
    "probe_data.world.num_frames=4",
    "probe_data.world.size=32",
    "probe_data.world.num_points=8",
    "probe_data.world.num_objects=2",
    "probe_data.splits.train=16",
    "probe_data.splits.val=2",
    "probe_data.splits.test=8",
]
EXPECTED = {
    "depth": {"abs_rel", "delta1", "delta2", "delta3", "rmse"},
    "points": {"average_jaccard", "occlusion_accuracy", "average_pts_within_thresh"},
    "boxes": {"mean_iou"},
    "pose": {"rotation_error_deg", "translation_angle_deg", "end_point_error"},
    "classification": {"top1"},
}
RANGES = {
    "abs_rel": (0.0, math.inf),
    "rmse": (0.0, math.inf),
    "rotation_error_deg": (0.0, 180.0),
    "translation_angle_deg": (0.0, 180.0),
    "end_point_error": (0.0, math.inf),
}  # the rest: fractions in [0, 1]


def compose_probe(tmp_path: Path, *overrides: str, world: bool = True):
    return compose(
        "probe",
        [
            *TINY,
            *(TINY_WORLD if world else []),
            f"cache_dir={tmp_path / 'cache'}",
            f"results={tmp_path / 'results.jsonl'}",
            *overrides,
        ],
    )


@pytest.mark.parametrize("task", list(EXPECTED))
def test_every_task_trains_evaluates_and_draws(tmp_path, task):
    cfg = compose_probe(tmp_path, f"probe={task}")
    metrics = probe(cfg, tmp_path / "run")
    assert EXPECTED[task] <= set(metrics)
    for name in EXPECTED[task]:  # each metric within the range its definition allows
        low, high = RANGES.get(name, (0.0, 1.0))
        assert low <= metrics[name] <= high, (name, metrics[name])
    assert (tmp_path / "run" / f"{task}.png").stat().st_size > 0
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["task"] == task and record["backbone"] == "random" and record["seed"] == 0
    assert record["backbone_params"] == count_parameters(load_backbone("random", cfg.random_backbone).encoder)
    assert record["metrics"] == metrics and record["readout_params"] > record["backbone_params"] // 100
    settings = [{"lr": lr, "weight_decay": wd} for lr in cfg.train.lrs for wd in cfg.train.weight_decays]
    assert (
        record["chosen"] in settings and [{k: g[k] for k in ("lr", "weight_decay")} for g in record["grid"]] == settings
    )


def test_cached_features_equal_features_on_the_fly(tmp_path):
    cfg = compose_probe(tmp_path, "probe=depth")
    computing = probe(cfg, tmp_path / "run")
    chunks = sorted((tmp_path / "cache" / "features").glob("*/train/chunk_*.safetensors"))
    assert len(chunks) >= 1
    mtimes = [c.stat().st_mtime_ns for c in chunks]
    assert probe(cfg, tmp_path / "run2") == computing  # a second probe reuses the cache, to the same result
    assert [c.stat().st_mtime_ns for c in chunks] == mtimes
    from fourd.data.world import WorldDataset

    world = next((tmp_path / "cache").glob("world_*"))
    dataset = WorldDataset(world, "train")
    backbone = load_backbone("random", cfg.random_backbone, cfg.seed)
    stored = load_file(str(chunks[0]))["features"]
    direct = backbone.features(dataset[3]["video"][None])[0]
    torch.testing.assert_close(stored[3].float(), direct, atol=2e-3, rtol=2e-3)  # float16 storage
    targets = stack_targets(dataset, range(3, 4))
    assert "video" not in targets and torch.equal(targets["depth"][0], dataset[3]["depth"])


def test_pixels_are_the_raw_tubelets():
    video = torch.randint(0, 256, (1, 3, 4, 32, 32), dtype=torch.uint8)
    features = load_backbone("pixels", {}).features(video)
    assert features.shape == (1, 2, 16, 3 * 2 * 8 * 8)  # 4 frames of 32 x 32: 2 x 4 x 4 tubelets of 2 x 8 x 8
    # token 1 of tubelet time 1 is the patch at row 0, column 1 of frames 2-3; its first value is pixel
    # (c=0, t=2, y=0, x=8)
    torch.testing.assert_close(features[0, 1, 1, 0], video[0, 0, 2, 0, 8].float() / 255)


@pytest.mark.parametrize("task", ["depth", "points", "boxes", "pose"])
def test_the_trivial_baseline_reads_no_video(tmp_path, task):
    cfg = compose_probe(tmp_path, f"probe={task}", "backbone=trivial")
    metrics = probe(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["backbone"] == "trivial" and record["backbone_params"] == 0 and record["chosen"] is None
    assert record["protocol"] == protocol_key(cfg)
    assert not (tmp_path / "cache" / "features").exists()  # no features were computed
    if task == "pose":  # the identity: no rotation error only if the camera never turned
        assert metrics["rotation_error_deg"] > 0 and metrics["translation_angle_deg"] == 90.0
    if task == "boxes":  # the first-frame box held still is exact on frame 0 only, which is not scored
        assert 0 < metrics["mean_iou"] < 1


def test_the_head_is_chosen_on_val_never_on_test(tmp_path, monkeypatch):
    """Two heads: the one with the better val metric is tested, even where the other is better on test."""
    from fourd.probe import run as probe_run

    seen = []
    real = probe_run.score_split

    def spy(scorers, loader, device, featurize):
        seen.append((len(scorers), len(loader.dataset)))
        return real(scorers, loader, device, featurize)

    monkeypatch.setattr(probe_run, "score_split", spy)
    cfg = compose_probe(tmp_path, "probe=depth", "train.lrs=[1e-4,1e-2]")
    probe(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert seen == [(2, 2), (1, 8)]  # every head on val (2 clips), then only the chosen one on test (8 clips)
    values = [g["val_abs_rel"] for g in record["grid"]]
    assert record["chosen"]["lr"] == record["grid"][values.index(min(values))]["lr"]
    assert record["val"]["abs_rel"] == min(values)


def test_backbone_must_exist(tmp_path):
    with pytest.raises(BackboneError, match="none of trivial, pixels, random"):
        load_backbone("no/such/encoder.safetensors", {})


@pytest.mark.slow
def test_multirun_sweep_and_report(tmp_path):
    from fourd.models.vit import SpaceTimeViT, ViTConfig
    from tests.helpers.encoders import save_encoder

    encoder = save_encoder(
        tmp_path / "wide" / "encoder.safetensors",
        SpaceTimeViT(ViTConfig(width=64, depth=2, heads=2, mlp=128, patch_size=(2, 8, 8), num_frames=4, image_size=32)),
    )
    cmd = [
        sys.executable,
        "-m",
        "fourd.probe",
        "-m",
        "probe=depth,points,pose",
        f"backbone=trivial,random,{encoder}",
        "seed=0,1",
        *TINY,
        *TINY_WORLD,
        f"cache_dir={tmp_path / 'cache'}",
        f"results={tmp_path / 'results.jsonl'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_quiet(proc.stdout + proc.stderr)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted((r["task"], r["backbone"], r["seed"]) for r in records) == sorted(
        (t, b, s) for t in ("depth", "points", "pose") for b in ("trivial", "random", str(encoder)) for s in (0, 1)
    )
    assert report_main(["--results", str(tmp_path / "results.jsonl"), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "results.md").read_text().splitlines()
    assert table[2].startswith("| trivial | 0.00M | 2 |") and table[3].startswith("| random |")  # baselines first
    assert "depth abs_rel" in table[0] and "points average_jaccard" in table[0]
    depth = [r["metrics"]["abs_rel"] for r in records if r["task"] == "depth" and r["backbone"] == "random"]
    mean, std = sum(depth) / 2, abs(depth[0] - depth[1]) / 2**0.5  # the sample std of two values
    assert f"{mean:.3f} ± {std:.3f}" in table[3]
    assert (tmp_path / "report" / "scaling.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_refused_probe_and_exits_1_naming_it(tmp_path):
    missing = tmp_path / "missing.safetensors"
    cmd = [sys.executable, "-m", "fourd.probe", "-m", "probe=depth", f"backbone=trivial,{missing},pixels", *TINY]
    cmd += [*TINY_WORLD, f"cache_dir={tmp_path / 'cache'}", f"results={tmp_path / 'results.jsonl'}"]
    cmd.append(f"hydra.sweep.dir={tmp_path / 'multirun'}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: backbone '{missing}'") and len(errors) == 2, proc.stderr[-3000:]
    assert errors[1] == f"error: 1 probes of the sweep were refused: job 1 (probe=depth backbone={missing} seed=0)"
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["backbone"] for r in records] == ["trivial", "pixels"]  # the one after the refused probe ran too


def test_probe_on_a_real_format_dataset(tmp_path):
    """probe_data=scannet reads ScanNet-style exported frames; the depth probe trains and evaluates on them."""
    for split, scenes in (("train", ["scene0000_00", "scene0001_00"]), ("val", ["scene0002_00"])):
        for scene in scenes:
            write_scannet_scene(tmp_path / "scannet" / split, scene, num_frames=6)
    common = [
        "probe_data.train.num_frames=4",
        "probe_data.test.num_frames=4",
        "probe_data.train.size=32",
        "probe_data.test.size=32",
        "probe_data.train.stride=1",
        "probe_data.test.stride=1",
    ]
    cfg = compose_probe(
        tmp_path,
        "probe=depth",
        "probe_data=scannet",
        "train.batch_size=1",
        *common,
        f"probe_data.train.root={tmp_path / 'scannet' / 'train'}",
        f"probe_data.test.root={tmp_path / 'scannet' / 'val'}",
        world=False,
    )
    metrics = probe(cfg, tmp_path / "run")
    assert math.isfinite(metrics["abs_rel"])
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["data"] == "scannet"


def test_a_backbone_with_nan_weights_is_refused_in_one_line(tmp_path):
    from fourd.models.vit import SpaceTimeViT, ViTConfig
    from tests.helpers.encoders import save_encoder

    encoder = SpaceTimeViT(
        ViTConfig(width=32, depth=2, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    )
    state = encoder.state_dict()
    state["blocks.1.mlp.fc2.weight"][0, 0] = float("nan")
    path = save_encoder(tmp_path / "nan.safetensors", encoder, state)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fourd.probe",
            f"backbone={path}",
            f"cache_dir={tmp_path / 'c'}",
            f"results={tmp_path / 'results.jsonl'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: backbone '{path}': {path} holds nan or inf in 1 tensors: blocks.1.mlp.fc2.weight"
    )
    assert not (tmp_path / "results.jsonl").exists() and not (tmp_path / "c").exists()  # nothing recorded or built


def test_an_impossible_random_backbone_is_named_by_its_key():
    from fourd.errors import ConfigError

    cfg = composed("probe", "random_backbone.depth=0")
    with pytest.raises(ConfigError, match="^random_backbone: encoder sizes must be positive .* got depth=0"):
        load_backbone("random", cfg.random_backbone)


class DepthAsVideo(torch.utils.data.Dataset):
    """The world's clips with each frame replaced by a picture of its depth (red: log-depth, green 0, blue 255,
    so that the readout's per-token normalisation keeps the level): a video from which depth can be read."""

    def __init__(self, clips: torch.utils.data.Dataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.clips[index])
        code = (item["depth"].clamp(0.1, 10).log() - math.log(0.1)) / (math.log(10) - math.log(0.1))
        item["video"] = torch.stack([code, torch.zeros_like(code), torch.ones_like(code)]).mul(255).to(torch.uint8)
        return item


def test_a_probe_reads_depth_from_a_video_that_shows_it(tmp_path):
    """The readout must use its features: on pixels that show the depth it beats the no-video prior by far."""
    from fourd.probe import run as probe_run

    cfg = compose_probe(
        tmp_path, "probe=depth", "backbone=pixels", "train.steps=200", "train.lrs=[1e-2]", "train.warmup_steps=10"
    )
    backbone = load_backbone("pixels", {})
    splits, num_classes, identity = probe_run.probe_splits(cfg)
    splits = {name: DepthAsVideo(split) for name, split in splits.items()}
    featurize = probe_run.frozen_features(cfg, backbone, splits["test"])
    data = probe_run.split_stores(cfg, backbone, featurize, splits, identity + "depth as video")
    geometry = probe_run.clip_geometry(splits["test"], num_classes, backbone.width)
    _, prior, _ = probe_run.probe_prior(cfg, geometry, data)
    inputs = probe_run.readout_inputs(cfg, splits, data, geometry.height)
    _, read, _ = probe_run.probe_with_heads(cfg, geometry, backbone, data, inputs, tmp_path / "run", None)
    assert read["abs_rel"] < 0.5 * prior["abs_rel"], (read, prior)


@pytest.mark.parametrize("task", ["depth", "points"])
def test_features_on_the_fly_give_the_cached_features_numbers(tmp_path, task):
    """cache_features=false runs the frozen backbone in each step: without augmentation, the same numbers."""
    cached = probe(compose_probe(tmp_path, f"probe={task}", "pictures=false"), tmp_path / "cached")
    on_the_fly = probe(
        compose_probe(tmp_path, f"probe={task}", "pictures=false", "cache_features=false"), tmp_path / "fly"
    )
    assert on_the_fly == cached
    assert (
        not list((tmp_path / "cache" / "features").glob("*/*/chunk_*"))
        or len({p.parent.parent for p in (tmp_path / "cache" / "features").glob("*/*/chunk_*")}) == 1
    )  # the on-the-fly run wrote no features of its own


def test_augmented_training_draws_its_clips_with_their_targets(tmp_path):
    augment = "+train.augment={scale: [0.3, 0.6], flip: 1.0}"
    cfg = compose_probe(tmp_path, "probe=points", "cache_features=false", augment)
    metrics = probe(cfg, tmp_path / "run")
    assert 0 <= metrics["average_jaccard"] <= 1
    assert (tmp_path / "run" / "points_augmented.png").stat().st_size > 0
    with pytest.raises(ValueError, match="train.augment needs cache_features=false"):
        probe(compose_probe(tmp_path, "probe=points", augment), tmp_path / "refused")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.steps=0", "train.steps=0: at least 1"),
        ("train.lrs=[-1.0]", r"train.lrs=\[-1.0\]: one or more positive learning rates"),
        ("train.lrs=[]", r"train.lrs=\[\]: one or more positive"),
        ("train.batch_size=1000", r"train.batch_size=1000, but the train split has \d+ clips: no full batch"),
    ],
)
def test_a_probe_that_would_not_earn_its_result_is_refused_before_recording(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        probe(compose_probe(tmp_path, "probe=depth", override), tmp_path / "run")
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=abc", "seed='abc' must be a whole number >= 0"),
        ("readout.readout_depth=0", r"readout.readout_depth=0 must be a number in \(0.0, 1.0\]"),
        ("readout.heads=5", r"readout.width=\d+ is not divisible by readout.heads=5"),
        ("val_fraction=1", r"val_fraction=1 must be a number in \(0.0, 1.0\)"),
        ("cache_features=maybe", "cache_features='maybe' must be true or false"),
        ("devices=0", "devices=0 must be a whole number >= 1"),
    ],
)
def test_a_setting_that_cannot_work_is_named_before_anything_is_computed(tmp_path, override, message):
    with pytest.raises(ConfigError, match=rf"^{message}"):
        check_settings(compose_probe(tmp_path, "probe=depth", override))


def test_a_results_path_that_cannot_be_written_is_refused_before_computing(tmp_path):
    (tmp_path / "file").write_text("")
    cfg = compose_probe(tmp_path, "probe=depth", f"results={tmp_path / 'file' / 'results.jsonl'}")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        probe(cfg, tmp_path / "run")
    assert not (tmp_path / "cache").exists()  # nothing computed


def test_non_finite_metrics_are_not_recorded():
    from fourd.errors import FourdError
    from fourd.probe.run import check_earned

    check_earned({"abs_rel": 0.2})
    with pytest.raises(FourdError, match=r"not finite \({'abs_rel': nan}\): nothing recorded"):
        check_earned({"abs_rel": float("nan"), "delta1": 0.5})


def test_the_protocol_names_what_was_measured_but_not_the_seed_or_backbone(tmp_path):
    key = protocol_key(compose_probe(tmp_path))
    same = ["seed=3", "backbone=pixels", "cache_dir=/elsewhere", "train.num_workers=2", "train.checkpoint_every=0"]
    for override in same:
        assert protocol_key(compose_probe(tmp_path, override)) == key, override
    other = [
        "probe_data.world.seed=7",
        "probe_data.splits.test=3",
        "probe=points",
        "probe.options.loss=silog",
        "readout.width=16",
        "train.steps=3",
        "train.lrs=[1e-3]",
        "cache_features=false",
    ]
    keys = {protocol_key(compose_probe(tmp_path, override)) for override in other}
    assert len(keys) == len(other) and key not in keys


def test_a_probe_on_cached_features_never_loads_the_backbone(tmp_path, monkeypatch):
    """Seeds and sweeps on a cached backbone read its features (picture included): the weights stay on disk."""
    from fourd.models.vit import SpaceTimeViT, ViTConfig
    from fourd.probe.backbones import native
    from tests.helpers.encoders import save_encoder

    config = ViTConfig(width=32, depth=2, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    encoder = save_encoder(tmp_path / "encoder.safetensors", SpaceTimeViT(config))
    cfg = compose_probe(tmp_path, f"backbone={encoder}", "pictures=true")
    first = probe(cfg, tmp_path / "first")
    loads = []
    monkeypatch.setattr(native, "load_encoder", lambda path: loads.append(path))  # None: any use would fail
    assert probe(cfg, tmp_path / "second") == first
    assert loads == [] and (tmp_path / "second" / "depth.png").exists()
