"""The scaling study pretrains each size, probes each beside the baselines, reports, and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fourd.errors import PREEMPTED_EXIT_CODE, ConfigError, FourdError
from fourd.probe.scaling_study import missing, probe_command, recorded, run, size_name, size_names

TINY_SIZES = "sizes=[{width:32,depth:1,heads:2,mlp:64},{width:32,depth:2,heads:2,mlp:64}]"


def test_size_names_tell_the_sizes_apart():
    """Two sizes of one width and depth both mapped to w64_d2: the second was never trained, the first stood in."""
    assert size_name({"size": "b"}) == "vit_b"
    assert size_name({"size": "b", "drop_path": 0.1}) == "vit_b_drop_path0.1"
    sizes = [{"width": 64, "depth": 2, "heads": 2, "mlp": 256}, {"width": 64, "depth": 2, "heads": 4, "mlp": 128}]
    assert size_names(sizes) == ["w64_d2_h2_m256", "w64_d2_h4_m128"]
    with pytest.raises(ConfigError, match="would share the folder w64_d2_h2_m256: list each size once"):
        size_names([sizes[0], {"mlp": 256, "heads": 2, "depth": 2, "width": 64}])


def test_a_failed_step_ends_the_study_in_one_line_and_a_stopped_one_with_its_exit_code():
    run([sys.executable, "-c", "pass"])
    with pytest.raises(FourdError, match=r"^`python -c import sys; sys.exit\(3\)` failed with exit code 3"):
        run([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(SystemExit) as stopped:
        run([sys.executable, "-c", f"import sys; sys.exit({PREEMPTED_EXIT_CODE})"])
    assert stopped.value.code == PREEMPTED_EXIT_CODE


def test_only_backbones_with_an_unrecorded_probe_are_probed_again(tmp_path):
    results = tmp_path / "probe_results.jsonl"
    rows = [
        {"task": t, "backbone": "a", "backbone_params": 1, "seed": s, "metrics": {}}
        for t in ("depth", "pose")
        for s in (0, 1)
    ]
    lines = [json.dumps(r) for r in rows[:-1]] + [json.dumps(rows[-1])[:20]]  # the last one cut short by a kill
    results.write_text("\n".join(lines) + "\n")
    done = recorded(results)  # read as the report reads it: the cut line is skipped, not a crash
    assert missing(["a", "b"], ["depth"], [0, 1], done) == ["b"]
    assert missing(["a", "b"], ["depth", "pose"], [0, 1], done) == ["a", "b"]  # a lacks (pose, 1)
    command = probe_command(["depth"], ["a", "b"], [0, 1], ["train.steps=2"], tmp_path)
    assert command[2:] == [
        "fourd.probe", "-m", "probe=depth", "backbone=a,b", "seed=0,1",
        f"results={results}", f"hydra.sweep.dir={tmp_path / 'probe'}", "train.steps=2",
    ]  # fmt: skip


@pytest.mark.slow
def test_a_study_pretrains_probes_reports_and_resumes(tmp_path):
    out = tmp_path / "study"
    command = [
        sys.executable, "-m", "fourd.study", f"out={out}", TINY_SIZES,
        "train=['+exp=demo','trainer.max_steps=2','data.num_workers=0','data.batch_size=4']",
        "probe.tasks=[depth]", "probe.seeds=[0,1]", "probe.baselines=[trivial]",
        "probe.overrides=['train.steps=2','train.batch_size=4','cache_dir=" + str(tmp_path / "cache") + "',"
        "'probe_data.splits.train=16','probe_data.splits.val=2','probe_data.splits.test=8',"
        "'probe_data.world.num_points=8']",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "probe_results.jsonl").read_text().splitlines()]
    encoders = [str(out / name / "encoder.safetensors") for name in ("w32_d1_h2_m64", "w32_d2_h2_m64")]
    assert sorted((r["backbone"], r["seed"]) for r in rows) == sorted(
        (b, s) for b in ["trivial", *encoders] for s in (0, 1)
    )
    params = {r["backbone"]: r["backbone_params"] for r in rows}
    assert params[encoders[0]] < params[encoders[1]]
    assert all(e in (out / "report" / "results.md").read_text() for e in encoders)
    assert (out / "report" / "scaling.png").is_file()

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    logged = again.stdout + again.stderr
    assert "-m fourd.report" in logged
    assert "-m fourd.train" not in logged and "-m fourd.probe" not in logged  # nothing left to run
    assert len((out / "probe_results.jsonl").read_text().splitlines()) == len(rows)
