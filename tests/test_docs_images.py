"""tools/docs_images.py: the scaling plot and the chosen backbone's pictures of predictions, small, from a results
file and the run folders it names."""

from __future__ import annotations

import json
import runpy

import pytest
from PIL import Image

from tests.helpers import REPO

docs_images = runpy.run_path(str(REPO / "tools" / "docs_images.py"))


def probe_run(tmp_path, backbone: str, params: int, colour: str, width: int) -> dict:
    """A probe's results line and the picture in its run folder."""
    run_dir = tmp_path / "runs" / backbone
    run_dir.mkdir(parents=True)
    Image.new("RGB", (width, 100), colour).save(run_dir / "depth.png")
    metrics = {"abs_rel": 0.2, "delta1": 0.7, "delta2": 0.9, "delta3": 0.95, "rmse": 1.0}
    return {"task": "depth", "backbone": backbone, "backbone_params": params, "seed": 0, "metrics": metrics,
            "run_dir": str(run_dir)}  # fmt: skip


def test_the_chosen_backbones_picture_and_the_plot_are_written_small(tmp_path):
    results = tmp_path / "results.jsonl"
    runs = [probe_run(tmp_path, "trivial", 0, "blue", 300), probe_run(tmp_path, "mine.safetensors", 10, "red", 3000)]
    results.write_text("".join(json.dumps(run) + "\n" for run in runs))
    docs_images["main"]([str(results), "--backbone", "mine.safetensors", "--out", str(tmp_path / "img")])
    picture = Image.open(tmp_path / "img" / "probe_depth.png").convert("RGB")
    assert picture.size == (docs_images["MAX_WIDTH"], 40) and picture.getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(tmp_path / "img" / "scaling.png").width <= docs_images["MAX_WIDTH"]
    with pytest.raises(SystemExit, match="no probe of backbone=other"):
        docs_images["main"]([str(results), "--backbone", "other", "--out", str(tmp_path / "img")])
