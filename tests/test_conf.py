"""Every shipped config composes; experiments build on the meta device; groups hold only what their code reads."""

import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

import fourd
from fourd.conf import CONFIG_DIR, compose, encoder_config, mae_config
from fourd.models.zoo import parameter_counts, zoo_rows
from fourd.probe.backbones import load_backbone
from fourd.probe.run import build_head
from fourd.probe.tasks.base import ClipGeometry
from tests.helpers.configs import composed

EXPS = sorted(p.stem for p in (Path(CONFIG_DIR) / "exp").glob("[!_]*.yaml"))  # _vit.yaml is a base, not a run
VITS = [e for e in EXPS if e.startswith("vit_")]
ZOO = {row["name"]: row for row in zoo_rows(mask_ratio=0.95)}


@pytest.mark.parametrize("exp", EXPS)
def test_every_experiment_composes_and_builds_on_meta(exp):
    cfg = composed("train", f"+exp={exp}")
    config = mae_config(cfg.model)
    params = parameter_counts(config)
    if exp.startswith("vit_"):
        assert config.encoder.patch_size == (2, 16, 16) and config.encoder.num_frames == 16
        assert config.encoder.image_size == (224, 224) and config.mask_ratio == 0.95
        assert cfg.trainer.precision == "auto"
        big = exp in ("vit_g", "vit_bigg", "vit_e", "vit_22b")
        assert cfg.strategy.name == ("fsdp" if big else "ddp")
        assert params["encoder"] == ZOO[cfg.model.size]["encoder_params"]  # the registry size, at paper shapes
    else:  # the demo: the small MAE of the main job
        assert (exp, params["encoder"], params["decoder"]) == ("demo", 875_136, 463_232)


def test_experiment_names_are_distinct_without_case():
    assert len({e.lower() for e in EXPS}) == len(EXPS)
    assert {"demo", "vit_g", "vit_bigg", "vit_e", "vit_22b"} <= set(EXPS)


@pytest.mark.parametrize("exp", VITS)
def test_vit_experiments_differ_only_in_name_size_and_strategy(exp):
    cfg, base = (OmegaConf.to_container(composed("train", f"+exp={name}")) for name in (exp, "vit_b"))
    assert (cfg["name"], cfg["model"]["size"]) == (exp, exp.removeprefix("vit_"))
    for c in (cfg, base):
        del c["name"], c["strategy"], c["model"]["size"]
    assert cfg == base


def test_random_probe_backbone_is_the_demo_encoder():
    demo = composed("train", "+exp=demo")
    probe = composed("probe")
    assert encoder_config(probe.random_backbone) == encoder_config(demo.model)
    changed = composed("probe", "random_backbone.depth=2")
    assert encoder_config(changed.random_backbone).depth == 2


def test_trainer_group_holds_only_trainer_arguments():
    cfg = composed("train")
    managed = {"self", "strategy", "callbacks", "logger", "plugins", "default_root_dir"}
    arguments = set(inspect.signature(L.Trainer.__init__).parameters) - managed
    assert set(cfg.trainer) <= arguments, set(cfg.trainer) - arguments
    extra = composed("train", "+trainer.max_time=00:01:00:00")
    assert extra.trainer.max_time == "00:01:00:00"


@pytest.mark.parametrize("config_name", ["train", "probe", "study"])
def test_the_primary_configs_live_in_the_package_folder(config_name):
    assert Path(CONFIG_DIR) == Path(fourd.__file__).resolve().parent / "conf"
    assert (Path(CONFIG_DIR) / f"{config_name}.yaml").is_file()


def test_data_world_pretrains_on_the_videos_of_the_probes_world(tmp_path):
    from hydra.utils import instantiate

    from fourd.data.world import WorldDataset

    small = [f"cache_dir={tmp_path}", "probe_data.splits={train: 3, val: 1, test: 1}"]
    train = compose("train", ["+exp=demo", "data=world", *small])
    probe = compose("probe", small)
    resolved = [OmegaConf.to_container(d, resolve=True) for d in (train.data.dataset, probe.probe_data.train)]
    assert resolved[0] == resolved[1]  # one world definition for both
    dataset = instantiate(train.data.dataset)
    assert isinstance(dataset, WorldDataset) and dataset.split == "train" and len(dataset) == 3
    video = dataset[0]["video"]
    assert video.dtype == torch.uint8 and video.shape == (3, train.model.num_frames, 64, 64)


PROBE_EXPS = sorted(p.stem for p in (Path(CONFIG_DIR) / "probe_exp").glob("[!_]*.yaml"))
PAPER_READOUT_HEADS = {"kubric_perception_points": 8, "waymo_boxes": 4}  # the paper's tracking readouts
PAPER_GEOMETRY = {"num_frames": 16, "height": 224, "width": 224, "num_points": 64, "num_objects": 4, "num_classes": 174}


@pytest.mark.parametrize("probe_exp", PROBE_EXPS)
def test_every_paper_probe_composes_and_builds_on_meta(probe_exp):
    cfg = composed("probe", f"+probe_exp={probe_exp}", "backbone=random")
    heads = PAPER_READOUT_HEADS.get(probe_exp, 16)
    assert (cfg.readout.width, cfg.readout.heads, cfg.readout.readout_depth) == (1024, heads, 0.95)
    assert (cfg.probe_data.test.num_frames, cfg.probe_data.test.size) == (16, 224)
    with torch.device("meta"):
        backbone = load_backbone(cfg.backbone, cfg.random_backbone)
        head = build_head(cfg, ClipGeometry(**PAPER_GEOMETRY, feature_width=backbone.width), backbone)
    assert backbone.params == ZOO["b"]["encoder_params"]  # ViT-B at 16x224x224, 2x16x16 tubelets
    assert head.readout.config.num_frames == 8 and head.readout.coords.shape == (14 * 14, 2)
    queries = {"depth": 16 * 224 * 224 // (2 * 8 * 8), "points": 16, "boxes": 16, "pose": 16, "classification": 1}
    if probe_exp in PAPER_READOUT_HEADS:  # 8 tiles of 2 frames of (x, y, visibility, certainty); a box per frame
        assert (cfg.readout.style, head.task.per_frame, head.readout.spatial_posenc) == ("paper", False, None)
        queries = {"points": 8, "boxes": 1}
        assert head.task.outputs_per_query == {"points": 2 * 4, "boxes": 16 * 4}[cfg.probe.task]
    assert head.task.num_queries == queries[cfg.probe.task]


def kinetics_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = [f"{label},{youtube_id},0,10,split" for label, youtube_id in rows]
    path.write_text("label,youtube_id,time_start,time_end,split\n" + "\n".join(lines) + "\n")
    return path


def test_kinetics_test_labels_index_the_train_class_list(tmp_path):
    from fourd.errors import FourdError, user_error
    from fourd.probe.run import probe_splits

    (tmp_path / "videos").mkdir()
    for youtube_id in "abcd":
        (tmp_path / "videos" / f"{youtube_id}_000000_000010.mp4").touch()  # listed, never decoded here
    train = kinetics_csv(tmp_path / "train.csv", [("abseiling", "a"), ("archery", "b"), ("zumba", "c")])
    overrides = [
        "probe_data=kinetics",
        f"probe_data.train.actions.csv_path={train}",
        f"probe_data.train.actions.videos_root={tmp_path / 'videos'}",
    ]
    test = kinetics_csv(tmp_path / "val.csv", [("zumba", "d")])  # one label of three: index 2, not 0
    splits, num_classes, _ = probe_splits(compose("probe", [*overrides, f"probe_data.test.actions.csv_path={test}"]))
    assert num_classes == 3 and splits["test"].classes == ["abseiling", "archery", "zumba"]
    assert splits["test"].actions.labels == [2]
    kinetics_csv(test, [("yoga", "d")])
    with pytest.raises(Exception) as caught:  # Hydra wraps it; the entry point prints the cause in one line
        probe_splits(compose("probe", [*overrides, f"probe_data.test.actions.csv_path={test}"]))
    cause = user_error(caught.value)
    assert isinstance(cause, FourdError) and "label 'yoga' is not one of the 3 classes" in str(cause)


READER_PROBE_DATA = sorted(p.stem for p in (Path(CONFIG_DIR) / "probe_data").glob("*.yaml") if p.stem != "world")


@pytest.mark.parametrize("name", READER_PROBE_DATA)
def test_clip_settings_of_every_reader_group_sit_at_its_top_and_reach_both_splits(name):
    """probe_data.num_frames, size, stride and num_points or num_objects: one setting for train and test alike (the
    world's are its generator's, under probe_data.world)."""
    cfg = composed("probe", f"probe_data={name}", "probe_data.num_frames=5", "probe_data.size=40")
    assert ("stride" in cfg.probe_data) == (name != "kubric_davis")  # Kubric and TAP-Vid records have no frame rate
    shared = [key for key in ("stride", "num_points", "num_objects") if key in cfg.probe_data]
    for key in shared:
        cfg.probe_data[key] = 3
    for split in ("train", "test"):
        node = cfg.probe_data[split]
        assert (node.num_frames, node.size) == (5, 40)
        assert all(node[key] == 3 for key in shared if key in node)
    assert all(any(key in cfg.probe_data[split] for split in ("train", "test")) for key in shared)
