"""Results files: lines that are not results are skipped and named; the newest line per seed wins."""

import json
import logging

import pytest

from fourd.probe.report import ResultsError, read_results
from fourd.probe.run import append_result


def record(seed: int, abs_rel: float) -> dict:
    return {"task": "depth", "backbone": "random", "backbone_params": 10, "seed": seed, "metrics": {"abs_rel": abs_rel}}


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
