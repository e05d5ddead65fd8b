from __future__ import annotations

import lightning as L
from omegaconf import OmegaConf

from fourd.conf import mae_config
from fourd.train.module import TrainModule, skip_summary
from tests.helpers.configs import composed


def test_skip_summary_counts_distinct_videos_in_one_line():
    assert skip_summary(["a.mp4", "b.mp4"], 7) == "skipped 2 unreadable videos (passed over 7 times): a.mp4, b.mp4"
    line = skip_summary([f"{i}.mp4" for i in range(5)], 5)
    assert line == "skipped 5 unreadable videos (passed over 5 times): 0.mp4, 1.mp4, 2.mp4, ..."


def demo_module() -> TrainModule:
    cfg = composed("train", "+exp=demo")
    module = TrainModule(mae_config(cfg.model).to_dict(), OmegaConf.to_container(cfg.optimizer, resolve=True))
    module.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return module


def test_the_unreadable_videos_and_their_passes_survive_a_checkpoint():
    module = demo_module()
    module.unreadable_videos, module.skipped_videos = {"b.mp4", "a.mp4"}, 5
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)

    resumed = demo_module()
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.unreadable_videos == {"a.mp4", "b.mp4"} and resumed.skipped_videos == 5
