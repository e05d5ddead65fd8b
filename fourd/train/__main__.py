"""`python -m fourd.train +exp=NAME [key=value ...]`: MAE pretraining driven by Hydra (fourd/conf/train.yaml)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fourd.conf import CONFIG_DIR


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from fourd.train.nonfinite import NonFiniteLossError  # torch and Lightning load here, not for --help
    from fourd.train.run import train

    try:
        train(cfg, Path(HydraConfig.get().runtime.output_dir))
    except NonFiniteLossError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
