"""`python -m fourd.study [key=value ...]`: a scaling study (fourd/conf/study.yaml). Pretrains each size with one
recipe, probes each on the 4D tasks beside the baselines (3 seeds), and writes the report: results.md and the
metric-against-parameters plot."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from fourd.conf import CONFIG_DIR
from fourd.errors import reported

log = logging.getLogger(__name__)


@hydra.main(config_path=CONFIG_DIR, config_name="study", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported():
        from fourd.probe.scaling_study import study

        log.info(f"report: {study(cfg)}")


if __name__ == "__main__":
    main()
