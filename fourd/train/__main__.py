"""`python -m fourd.train +exp=NAME [key=value ...]`: MAE pretraining driven by Hydra (fourd/conf/train.yaml)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fourd.conf import CONFIG_DIR
from fourd.errors import PREEMPTED_EXIT_CODE, reported


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    with reported():
        from fourd.train.preemption import Preemption  # torch and Lightning load here
        from fourd.train.run import train

        trainer = train(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg)
    if trainer is not None and Preemption.stopped(trainer):
        raise SystemExit(PREEMPTED_EXIT_CODE)  # not 0: an orchestrator must not take the run as finished


if __name__ == "__main__":
    main()
