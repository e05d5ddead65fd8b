"""Rolling checkpoints: only complete ones count, commits are renames, the newest k are kept."""

from fourd.train.checkpoints import RollingCheckpoint, commit, latest_checkpoint, list_checkpoints
from fourd.train.run import resolve_resume


def test_only_complete_checkpoints_are_listed(tmp_path):
    (tmp_path / "step_000000002.ckpt").write_bytes(b"file checkpoint")
    sharded = tmp_path / "step_000000004.ckpt"
    sharded.mkdir()
    (sharded / "__0_0.distcp").write_bytes(b"shard")
    (sharded / ".metadata").write_bytes(b"written last")
    (tmp_path / "step_000000006.ckpt").mkdir()  # a directory without its DCP metadata
    (tmp_path / ".tmp-step_000000008.ckpt").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2, 4]
    assert latest_checkpoint(tmp_path) == sharded
    assert resolve_resume("auto", tmp_path) == str(sharded)
    assert resolve_resume("auto", tmp_path / "missing") is None


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
    RollingCheckpoint(tmp_path, keep_last=2).prune()
    assert [step for step, _ in list_checkpoints(tmp_path)] == [100, 1000]
    RollingCheckpoint(tmp_path, keep_last=0).prune()  # 0 keeps everything
    assert len(list_checkpoints(tmp_path)) == 2
