from __future__ import annotations

import numpy as np
import pytest
import torch

from fourd.probe.metrics import multi_clip_accuracy, top1_accuracy


def test_top1() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.0]])
    assert top1_accuracy(logits, torch.tensor([0, 1, 2])) == pytest.approx(2 / 3)
    assert top1_accuracy(logits, [0, 1, 0]) == 1.0


def test_multi_clip_averages_probabilities_per_video() -> None:
    # video a: 2 of 3 clips say 1, but the confident clip wins the mean probability (label 0: correct)
    # video b: mean logits would say 1, mean probabilities say 0 (label 0: correct); video c: wrong
    clips = {
        "a": [[0, 1], [0, 1], [10, 0]],
        "b": [[0, 10], [3, 0], [3, 0]],
        "c": [[1, 0]],
    }
    labels = {"a": 0, "b": 0, "c": 1}
    order = [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]  # clips interleaved
    logits = np.array([clips[v][i] for v, i in order], dtype=float)
    ids = [v for v, _ in order]
    assert multi_clip_accuracy(logits, [labels[v] for v in ids], ids) == pytest.approx(2 / 3)
    assert top1_accuracy(logits, [labels[v] for v in ids]) == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="labels"):
        multi_clip_accuracy(logits, [0, 0, 1, 0, 0, 1, 0], ids)
