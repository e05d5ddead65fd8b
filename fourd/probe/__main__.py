"""`python -m fourd.probe probe=<task> backbone=<random|path>`: a 4D probe on a frozen encoder (fourd/conf/probe.yaml).

Sweeps: `python -m fourd.probe -m probe=depth,points,boxes,pose backbone=random,outputs/demo/encoder.safetensors`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fourd.conf import CONFIG_DIR
from fourd.errors import PREEMPTED_EXIT_CODE, reported


@hydra.main(config_path=CONFIG_DIR, config_name="probe", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported():
        from fourd.probe.run import probe  # torch and Lightning load here, not for --help
        from fourd.probe.stopping import Stopped, stops_on_signals

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            with stops_on_signals():
                probe(cfg, run_dir)
        except Stopped as stopped:
            print(
                f"{stopped}: nothing recorded; run the same command with resume=auto (and this hydra.run.dir, "
                f"{run_dir}) to continue from its last checkpoint",
                file=sys.stderr,
            )
            raise SystemExit(PREEMPTED_EXIT_CODE) from None


if __name__ == "__main__":
    main()
