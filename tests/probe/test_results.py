"""Results files: lines that are not results are skipped and named; the newest line per seed wins."""

import json
import logging

import pytest

from fourd.probe.results import ResultsError, margins_table, markdown_table, read_results, write_report
from fourd.probe.run import append_result, protocol_key
from fourd.report import main as report_main
from tests.helpers.configs import composed


def record(seed: int, abs_rel: float, backbone: str = "random") -> dict:
    return {"task": "depth", "backbone": backbone, "backbone_params": 10, "seed": seed, "metrics": {"abs_rel": abs_rel}}


def test_bad_lines_are_skipped_named_and_the_rest_reported(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    lines = [
        json.dumps(record(0, 0.3)),
        '{"task": "depth", "backbone": "ran',  # cut short
        json.dumps({"task": "depth"}),  # not a result
        "",
        json.dumps(record(1, 0.2)),
        json.dumps(record(0, 0.25)),  # seed 0 again: the newest wins
    ]
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        results = read_results(path)
    assert [r["metrics"]["abs_rel"] for r in results[("depth", "random")]] == [0.25, 0.2]
    assert f"{path}: skipped 2 lines that are not probe results: line 2 (" in caplog.text
    assert "3 (no backbone, backbone_params, metrics)" in caplog.text


def test_a_file_without_results_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("garbage\n")
    with pytest.raises(ResultsError, match="no results in"):
        read_results(path)


def test_a_result_appended_after_a_line_cut_short_starts_a_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    append_result(path, record(0, 0.3))
    with open(path, "a") as f:
        f.write('{"task": "dep')  # a run killed while writing its line
    append_result(path, record(1, 0.2))
    assert [r["seed"] for r in read_results(path)[("depth", "random")]] == [0, 1]


def test_margins_are_in_pooled_seed_stds_and_checked_only_above_two():
    def seeds(backbone, *values):
        return [record(seed, value, backbone) for seed, value in enumerate(values)]

    results = {
        ("depth", "trivial"): seeds("trivial", 0.30, 0.30),
        ("depth", "random"): seeds("random", 0.29, 0.27),  # mean 0.28, std 0.01414
        ("depth", "mine"): seeds("mine", 0.20, 0.22),  # mean 0.21, std 0.01414
    }
    lines = margins_table(results).splitlines()
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in lines[2:]}
    # lower AbsRel is better: mine beats random by 0.07 in pooled std 0.01414 (4.9σ), trivial by 0.09 (9.0σ)
    assert "+0.070 (+4.9σ) ✓" in rows[("mine", "random")] and "+0.090 (+9.0σ) ✓" in rows[("mine", "trivial")]
    # random beats trivial by 0.02 in pooled std sqrt(0.01414^2 / 2) = 0.01: exactly 2σ is not above 2σ
    assert "+0.020 (+2.0σ)" in rows[("random", "trivial")] and "✓" not in rows[("random", "trivial")]
    assert ("trivial", "random") not in rows  # the prior is the reference, never compared itself
    one_seed = margins_table({("depth", "trivial"): seeds("trivial", 0.3), ("depth", "mine"): seeds("mine", 0.2)})
    assert "+0.100 (one seed)" in one_seed


def test_the_report_writes_into_its_own_folder_but_not_over_other_files(tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    rows = [{**record(seed, 0.3 - seed / 100), "metrics": {"abs_rel": 0.3, "delta1": 0.5}} for seed in range(2)]
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "report"
    assert report_main(["--results", str(results), "--out", str(out)]) == 0
    assert report_main(["--results", str(results), "--out", str(out)]) == 0  # its own report: written again
    (out / "notes.md").write_text("mine")
    assert report_main(["--results", str(results), "--out", str(out)]) == 1
    assert "did not write: choose another output folder, or pass --overwrite" in capsys.readouterr().err
    assert report_main(["--results", str(results), "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.md").read_text() == "mine"
    assert report_main(["--results", str(results), "--out", str(results), "--overwrite"]) == 1
    assert "is also an input" in capsys.readouterr().err and len(results.read_text().splitlines()) == 2


def pixels_on_world(world_seed: int, seed: int, abs_rel: float) -> dict:
    """A pixels depth result as fourd.probe records it on the 4D world of `world_seed`."""
    cfg = composed("probe", "backbone=pixels", f"seed={seed}", f"probe_data.world.seed={world_seed}")
    return {**record(seed, abs_rel, "pixels"), "data": "world", "protocol": protocol_key(cfg)}


def test_seeds_are_pooled_only_within_one_protocol(tmp_path):
    """Two pixels runs on different worlds (probe_data.world.seed 0 and 7) were pooled as "2 seeds"."""
    path = tmp_path / "results.jsonl"
    rows = [pixels_on_world(0, 0, 0.30), pixels_on_world(0, 1, 0.32), pixels_on_world(7, 0, 0.50)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    results = read_results(path)
    assert sorted(len(records) for records in results.values()) == [1, 2]  # never 3 seeds of one row
    for (_, row), records in results.items():
        assert row == f"pixels [protocol {records[0]['protocol'][:6]}]"
        assert {r["protocol"] for r in records} == {records[0]["protocol"]}
    pooled = {len(records): records for records in results.values()}
    assert [r["metrics"]["abs_rel"] for r in pooled[2]] == [0.30, 0.32]
    table = markdown_table(
        {key: [{**r, "metrics": {"abs_rel": 1.0, "delta1": 1.0}} for r in v] for key, v in results.items()}
    )
    assert table.count("| pixels [protocol ") == 2


def test_one_protocol_per_task_reads_as_before_and_lines_without_one_are_their_own(tmp_path):
    path = tmp_path / "results.jsonl"
    rows = [pixels_on_world(0, 0, 0.30), pixels_on_world(0, 1, 0.32)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert list(read_results(path)) == [("depth", "pixels")]  # the main sweep's report: unchanged rows
    old = {**record(2, 0.9, "pixels"), "data": "world"}  # written before results carried a protocol
    path.write_text(path.read_text() + json.dumps(old) + "\n")
    results = read_results(path)
    assert [r["seed"] for r in results[("depth", "pixels [protocol unknown]")]] == [2]
    assert len(results) == 2
    with_delta = tmp_path / "full.jsonl"
    with_delta.write_text(
        "".join(json.dumps({**row, "metrics": {"abs_rel": 0.3, "delta1": 0.5}}) + "\n" for row in [*rows, old])
    )
    table, _, plot = write_report(with_delta, tmp_path / "report")
    assert "pixels [protocol unknown]" in table and plot.is_file()
