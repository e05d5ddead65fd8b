"""quiet_lightning drops exactly Lightning's start-up chatter and torch's LeafSpec warning, nothing else."""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.utilities._pytree import _tree_flatten
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from fourd.quiet import quiet_lightning


def test_the_leafspec_warning_is_ignored_and_other_warnings_are_not():
    with warnings.catch_warnings(record=True) as caught:  # restores the filters afterwards
        warnings.simplefilter("always")
        _tree_flatten(1)
        assert any("LeafSpec" in str(w.message) for w in caught)  # Lightning still raises it: the filter is needed
        caught.clear()
        quiet_lightning()
        _tree_flatten(1)
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, but not from Lightning", FutureWarning, stacklevel=1
        )
        warnings.warn_explicit(
            "another deprecation", FutureWarning, "_pytree.py", 1, "lightning.pytorch.utilities._pytree"
        )
    assert [str(w.message) for w in caught] == [
        "`isinstance(treespec, LeafSpec)` is deprecated, but not from Lightning",
        "another deprecation",
    ]


def test_the_chatter_is_dropped_and_other_lightning_messages_logged_once(caplog):
    quiet_lightning()
    with caplog.at_level(logging.INFO):
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("TPU available: False, using: 0 TPU cores")
        rank_zero_info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        rank_zero_info("`Trainer.fit` stopped: `max_steps=2` reached.")
    assert caplog.messages == ["`Trainer.fit` stopped: `max_steps=2` reached."]
    assert not logging.getLogger("lightning").handlers  # reaches the job's handlers, not also Lightning's own


def test_the_mid_epoch_resume_warning_is_dropped():
    from lightning.pytorch.utilities.rank_zero import rank_zero_warn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        rank_zero_warn("You're resuming from a checkpoint that ended before the epoch ended and your dataloader is")
        rank_zero_warn("another warning")
    assert [str(w.message) for w in caught] == ["another warning"]
