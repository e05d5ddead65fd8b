"""What a fourd job does not print: Lightning's start-up chatter, its warning that a mid-epoch resume is unreliable
(fourd resumes exactly) and a deprecation warning that torch raises inside Lightning. Pretraining and probes call
`quiet_lightning()` when they start."""

from __future__ import annotations

import logging
import warnings

import lightning  # noqa: F401  (imported first: its import adds the console handler that quiet_lightning removes)

CHATTER = ("GPU available:", "TPU available:", "💡 Tip:")  # what every Trainer logs on rank 0 as it is built
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")  # those Lightning may give a handler


class DropChatter(logging.Filter):
    """Drops the records whose message starts with one of CHATTER."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(CHATTER)


DROP_CHATTER = DropChatter()


def quiet_lightning() -> None:
    """Drop Lightning's device-availability lines and litlogger tip, torch's `LeafSpec` FutureWarning raised in
    Lightning's `_pytree` and Lightning's warning that a mid-epoch resume is unreliable; once the job's logging
    is set up (Hydra: console and run log), Lightning's other messages reach it once, instead of also through
    Lightning's own console handler."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(DROP_CHATTER)
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    warnings.filterwarnings(  # wrong for fourd: VideoDataModule resumes mid-epoch exactly (its own checkpoint state)
        "ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended", category=UserWarning
    )
    if logging.getLogger().hasHandlers():
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
