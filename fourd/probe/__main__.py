"""`python -m fourd.probe probe=<task> backbone=<random|path>`: a 4D probe on a frozen encoder (fourd/conf/probe.yaml).

Sweeps: `python -m fourd.probe -m probe=depth,points,boxes,pose backbone=random,outputs/demo/encoder.safetensors`.
A sweep run here (Hydra's basic launcher) goes on past a probe refused for bad input, then exits 1 naming each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fourd.conf import CONFIG_DIR
from fourd.errors import PREEMPTED_EXIT_CODE, reported

REFUSED: list[str] = []  # each probe of this process's sweep that ended with a user error


def sweeps_in_this_process() -> bool:
    """A multirun whose jobs run one after another in this process (not submitted to a cluster)."""
    hydra_cfg = HydraConfig.get()
    return str(hydra_cfg.mode) == "RunMode.MULTIRUN" and hydra_cfg.launcher._target_.endswith("BasicLauncher")


@hydra.main(config_path=CONFIG_DIR, config_name="probe", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except SystemExit as refused:
        if refused.code != 1 or not sweeps_in_this_process():
            raise
        job = HydraConfig.get().job.num  # its error line is printed: go on
        REFUSED.append(f"job {job} (probe={cfg.probe.task} backbone={cfg.backbone} seed={cfg.seed})")


def run(cfg: DictConfig) -> None:
    with reported():
        from fourd.probe.run import probe  # torch and Lightning load here, not for --help
        from fourd.probe.sharded import leave_process_group
        from fourd.probe.stopping import Stopped, stops_on_signals

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            with stops_on_signals():
                probe(cfg, run_dir)
            leave_process_group()  # ranks launched together end together
        except Stopped as stopped:
            print(
                f"{stopped}: nothing recorded; run the same command with resume=auto (and this hydra.run.dir, "
                f"{run_dir}) to continue from its last checkpoint",
                file=sys.stderr,
            )
            raise SystemExit(PREEMPTED_EXIT_CODE) from None


if __name__ == "__main__":
    main()
    if REFUSED:
        print(f"error: {len(REFUSED)} probes of the sweep were refused: {'; '.join(REFUSED)}", file=sys.stderr)
        sys.exit(1)
