"""Whole-video inference: the depth demo and feature extraction on real (small) video files."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from fourd.data.video import count_frames, read_frames
from fourd.depth import main as depth_main
from fourd.extract import main as extract_main
from fourd.inference import feature_file_name, padded_windows
from fourd.models.readout import readout_layer_index
from fourd.models.vit import SpaceTimeViT, ViTConfig
from fourd.official import convert_official
from fourd.viz import colorize
from fourd.weights import load
from tests.helpers.encoders import save_encoder
from tests.helpers.videos import write_broken_video, write_test_video


@pytest.fixture
def depth_ckpt(fixtures_dir, tmp_path):
    return convert_official(
        fixtures_dir / "r4d_tiny" / "params.npz", tmp_path / "depth.safetensors", output_patch=(2, 4, 4)
    )


def test_clip_windows_cover_the_video_and_pad_the_last():
    windows = list(padded_windows(10, 4))
    assert windows == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert list(padded_windows(8, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_colorize_maps_near_and_far_apart():
    depth = np.linspace(1, 10, 32 * 32).reshape(1, 32, 32)
    rgb = colorize(depth)
    assert rgb.shape == (1, 32, 32, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0, 0], rgb[0, -1, -1])


def test_depth_demo_on_a_video(depth_ckpt, tmp_path, capsys):
    video = write_test_video(tmp_path / "in.mp4", num_frames=10, height=48, width=64)
    out = tmp_path / "out" / "depth.mp4"
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(out)]) == 0
    assert count_frames(out) == 10  # every input frame, although the model takes 4-frame clips
    frame = read_frames(out, [0])[0]
    assert frame.shape == (32, 64, 3)  # RGB | depth side by side, at the model's 32x32
    pngs = sorted((tmp_path / "out" / "depth_frames").glob("*.png"))
    assert len(pngs) == 10 and Image.open(pngs[0]).size == (64, 32)
    umask = os.umask(0)
    os.umask(umask)
    for path, full in [(out, 0o666), (tmp_path / "out" / "depth_frames", 0o777)]:  # not mkdtemp's 0700
        assert stat.S_IMODE(path.stat().st_mode) == full & ~umask


def test_depth_demo_rejects_undecodable_video_and_encoder_checkpoints(depth_ckpt, tmp_path, capsys):
    out = tmp_path / "depth.mp4"
    bad = write_broken_video(tmp_path / "bad.mp4", "truncated")
    assert depth_main([str(bad), "--ckpt", str(depth_ckpt), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.mp4" in err[0]
    assert not out.exists() and not (tmp_path / "depth_frames").exists()
    encoder = save_encoder(
        tmp_path / "enc.safetensors",
        SpaceTimeViT(ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)),
    )
    video = write_test_video(tmp_path / "in.mp4")
    assert depth_main([str(video), "--ckpt", str(encoder), "--out", str(out)]) == 1
    assert "without a depth readout" in capsys.readouterr().err


def test_extract_features_skips_and_reports_bad_videos(tmp_path, capsys):
    config = ViTConfig(width=32, depth=3, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    ckpt = save_encoder(tmp_path / "enc.safetensors", SpaceTimeViT(config))
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    write_test_video(videos / "a.mp4")
    write_test_video(videos / "sub" / "b.mp4", colour=(200, 40, 40))
    write_broken_video(videos / "c.mp4", "text")
    out = tmp_path / "features"
    assert extract_main(["--ckpt", str(ckpt), "--videos", str(videos), "--out", str(out), "--layer", "0", "-1"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 feature files" in captured.out and "skipped 1 unreadable" in captured.out
    assert "c.mp4" in captured.err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["a.safetensors", "sub__b.safetensors"]
    with safe_open(str(out / "sub__b.safetensors"), "pt") as f:
        assert set(f.keys()) == {"layer_0", "layer_3"}
        assert f.get_tensor("layer_3").shape == (2 * 4 * 4, 32)
        assert f.metadata()["video"].endswith("b.mp4")
    default_out = tmp_path / "default"
    extract_main(["--ckpt", str(ckpt), "--videos", str(videos), "--out", str(default_out)])
    with safe_open(str(default_out / "a.safetensors"), "pt") as f:
        assert list(f.keys()) == ["layer_2"]  # int(4 * 0.95) - 1, the readout layer


def test_extract_reads_a_depth_models_own_readout_layer_by_default(fixtures_dir, tmp_path):
    ckpt = convert_official(
        fixtures_dir / "r4d_tiny" / "params.npz", tmp_path / "d.safetensors", output_patch=(2, 4, 4), readout_depth=0.5
    )
    depth = load(ckpt).encoder.config.depth
    write_test_video(tmp_path / "videos" / "a.mp4")
    assert extract_main(["--ckpt", str(ckpt), "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "f")]) == 0
    with safe_open(str(tmp_path / "f" / "a.safetensors"), "pt") as f:
        assert list(f.keys()) == [f"layer_{readout_layer_index(depth + 1, 0.5)}"]
    assert readout_layer_index(depth + 1, 0.5) != readout_layer_index(depth + 1, 0.95)  # the release's would differ


def test_extract_with_only_bad_videos_fails(tmp_path, capsys):
    ckpt = save_encoder(
        tmp_path / "enc.safetensors",
        SpaceTimeViT(ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)),
    )
    (tmp_path / "v").mkdir()
    write_broken_video(tmp_path / "v" / "x.mp4", "empty")
    assert extract_main(["--ckpt", str(ckpt), "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o")]) == 1


def test_feature_file_names_are_flat_and_unique(tmp_path):
    assert feature_file_name(tmp_path / "a" / "b" / "c.mp4", tmp_path) == "a__b__c.safetensors"
    assert feature_file_name(tmp_path.parent / "x.mp4", tmp_path) == "x.safetensors"


def test_depth_demo_overwrites_nothing(depth_ckpt, tmp_path, capsys):
    video = write_test_video(tmp_path / "clip.mp4", num_frames=6, height=32, width=32)
    before = video.read_bytes()
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(video)]) == 1
    assert "is also an input" in capsys.readouterr().err and video.read_bytes() == before
    mine = tmp_path / "mine_frames"
    mine.mkdir()
    (mine / "keep.txt").write_text("my notes")
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(tmp_path / "mine.mp4")]) == 1
    assert "mine_frames already holds files this command did not write" in capsys.readouterr().err
    assert (mine / "keep.txt").read_text() == "my notes" and not (tmp_path / "mine.mp4").exists()
    folder = tmp_path / "results"
    folder.mkdir()
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(folder)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_depth_demo_replaces_an_existing_video_only_on_purpose_and_never_its_checkpoint(depth_ckpt, tmp_path, capsys):
    """`--out other.mp4` overwrote an existing video; `--out` equal to `--ckpt` turned the weights into an MP4."""
    video = write_test_video(tmp_path / "clip.mp4", num_frames=6, height=32, width=32)
    other = write_test_video(tmp_path / "other.mp4", num_frames=3, height=32, width=32)
    theirs, weights = other.read_bytes(), depth_ckpt.read_bytes()
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(other)]) == 1
    assert "other.mp4 exists: choose another output, or pass --overwrite" in capsys.readouterr().err
    assert other.read_bytes() == theirs and not (tmp_path / "other_frames").exists()
    for extra in ([], ["--overwrite"]):
        assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(depth_ckpt), *extra]) == 1
        assert "is also an input" in capsys.readouterr().err
    assert depth_ckpt.read_bytes() == weights
    (tmp_path / "other_frames").mkdir()
    (tmp_path / "other_frames" / "99999.png").write_bytes(b"stale")
    assert depth_main([str(video), "--ckpt", str(depth_ckpt), "--out", str(other), "--overwrite"]) == 0
    assert count_frames(other) == 6 and len(list((tmp_path / "other_frames").iterdir())) == 6


def test_extract_writes_into_a_folder_with_other_files_only_on_purpose(tmp_path, capsys):
    ckpt = save_encoder(
        tmp_path / "enc.safetensors",
        SpaceTimeViT(ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)),
    )
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "a.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.safetensors").write_bytes(b"mine")
    args = ["--ckpt", str(ckpt), "--videos", str(videos), "--out"]
    assert extract_main([*args, str(out)]) == 1
    assert "did not write" in capsys.readouterr().err and (out / "a.safetensors").read_bytes() == b"mine"
    assert extract_main([*args, str(videos), "--overwrite"]) == 1  # the videos folder is an input
    assert "is also an input" in capsys.readouterr().err and [p.name for p in videos.iterdir()] == ["a.mp4"]
    assert extract_main([*args, str(out), "--overwrite"]) == 0
    with safe_open(str(out / "a.safetensors"), "pt") as f:
        assert list(f.keys()) == ["layer_0"]  # replaced on purpose by features


def test_extract_writes_one_file_per_video_even_where_names_collide(tmp_path, capsys):
    config = ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    ckpt = save_encoder(tmp_path / "enc.safetensors", SpaceTimeViT(config))
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    for path in (videos / "x.mp4", videos / "x.mkv", videos / "sub" / "a.mp4", videos / "sub__a.mp4"):
        write_test_video(path)
    out = tmp_path / "features"
    assert extract_main(["--ckpt", str(ckpt), "--videos", str(videos), "--out", str(out)]) == 0
    assert "wrote 4 feature files" in capsys.readouterr().out
    sources = set()
    for path in out.iterdir():
        with safe_open(str(path), "pt") as f:
            sources.add(Path(f.metadata()["video"]).relative_to(videos).as_posix())
    assert sources == {"x.mp4", "x.mkv", "sub/a.mp4", "sub__a.mp4"}
    assert (
        extract_main(
            ["--ckpt", str(ckpt), "--videos", str(videos), "--out", str(out), "--layer", "99", "-7", "--overwrite"]
        )
        == 1
    )
    assert "entries 0 to 1" in capsys.readouterr().err
