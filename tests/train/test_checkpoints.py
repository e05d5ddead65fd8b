"""Rolling checkpoints: only complete ones count, commits are renames, the newest k are kept, and a resume
skips (auto) or refuses (a path) a damaged checkpoint."""

import logging
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from fourd.errors import ConfigError
from fourd.train.checkpoints import RollingCheckpoint, checkpoint_damage, commit, latest_checkpoint, list_checkpoints
from fourd.train.run import resolve_resume

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")


def file_checkpoint(path: Path) -> Path:
    torch.save({"state_dict": {"w": torch.arange(1000.0)}, "global_step": 2}, path)
    return path


def sharded_checkpoint(path: Path) -> Path:
    dcp.save({"w": torch.arange(1000.0)}, checkpoint_id=path)  # one process: no process group needed
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_only_complete_checkpoints_are_listed(tmp_path):
    file_checkpoint(tmp_path / "step_000000002.ckpt")
    sharded = sharded_checkpoint(tmp_path / "step_000000004.ckpt")
    (tmp_path / "step_000000006.ckpt").mkdir()  # a directory without its DCP metadata
    (tmp_path / ".tmp-step_000000008.ckpt").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2, 4]
    assert latest_checkpoint(tmp_path) == sharded
    assert resolve_resume("auto", tmp_path) == str(sharded)
    assert resolve_resume("auto", tmp_path / "missing") is None


def test_damage_is_found_in_files_and_shards(tmp_path):
    good_file = file_checkpoint(tmp_path / "a.ckpt")
    good_shards = sharded_checkpoint(tmp_path / "b.ckpt")
    assert checkpoint_damage(good_file) is None and checkpoint_damage(good_shards) is None
    truncate(good_file)
    assert "not a torch.save archive" in checkpoint_damage(good_file)
    flipped = file_checkpoint(tmp_path / "c.ckpt")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data: the archive still opens, a CRC fails
    flipped.write_bytes(bytes(data))
    assert "CRC" in checkpoint_damage(flipped)
    shard = next(good_shards.glob("*.distcp"))
    truncate(shard)
    assert f"shard {shard.name}" in checkpoint_damage(good_shards)


def test_resume_auto_falls_back_past_damaged_checkpoints(tmp_path, caplog):
    older = file_checkpoint(tmp_path / "step_000000002.ckpt")
    truncate(file_checkpoint(tmp_path / "step_000000004.ckpt"))
    truncate(next(sharded_checkpoint(tmp_path / "step_000000006.ckpt").glob("*.distcp")))
    with caplog.at_level(logging.WARNING):
        assert resolve_resume("auto", tmp_path) == str(older)
    assert "step_000000006.ckpt" in caplog.text and "step_000000004.ckpt" in caplog.text
    truncate(older)
    assert resolve_resume("auto", tmp_path) is None  # nothing reads: a fresh start, not a crash


def test_resume_path_must_be_a_readable_checkpoint(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"resume=.*garbage.ckpt is not a checkpoint"):
        resolve_resume(str(garbage), tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        resolve_resume(str(tmp_path / "missing.ckpt"), tmp_path)


def test_commit_replaces_a_checkpoint_of_the_same_step(tmp_path):
    final = tmp_path / "step_000000002.ckpt"
    final.mkdir()
    (final / ".metadata").write_text("old")
    new = tmp_path / ".tmp-step_000000002.ckpt"
    new.mkdir()
    (new / ".metadata").write_text("new")
    commit(new, final)
    assert (final / ".metadata").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000002.ckpt"]


def test_prune_keeps_the_newest_k(tmp_path):
    for step in (1, 10, 100, 1000):
        (tmp_path / f"step_{step:09d}.ckpt").write_bytes(b"x")
    RollingCheckpoint(tmp_path, keep_last=2).prune(1000)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [100, 1000]
    RollingCheckpoint(tmp_path, keep_last=0).prune(1000)  # 0 keeps everything
    assert len(list_checkpoints(tmp_path)) == 2


def test_prune_leaves_checkpoints_ahead_of_the_saved_step(tmp_path):
    """After resuming from step 2000 past a damaged step 3000, saving step 2500 with keep_last=1 must keep 2500
    (not count the damaged 3000 as the newest and delete every good one)."""
    for step in (2000, 2500, 3000):
        (tmp_path / f"step_{step:09d}.ckpt").write_bytes(b"x")
    RollingCheckpoint(tmp_path, keep_last=1).prune(2500)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2500, 3000]


@pytest.mark.slow
def test_checkpoints_are_staged_beside_their_destination_not_in_the_temp_folder(tmp_path, monkeypatch):
    """A system temp folder that cannot hold a checkpoint (here: one that does not exist) changes nothing."""
    import tempfile

    from fourd.conf import compose
    from fourd.train.run import train

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-folder"))
    overrides = ["+exp=demo", "trainer.max_steps=2", "data.num_workers=0", "data.dataset.num_clips=16"]
    train(compose("train", [*overrides, "checkpoint.every_n_steps=1", "trainer.enable_progress_bar=false"]), tmp_path)
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [1, 2]
