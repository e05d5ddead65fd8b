from __future__ import annotations

from fourd.train.module import skip_summary


def test_skip_summary_counts_distinct_videos_in_one_line():
    assert skip_summary(["a.mp4", "b.mp4"], 7) == "skipped 2 unreadable videos (passed over 7 times): a.mp4, b.mp4"
    line = skip_summary([f"{i}.mp4" for i in range(5)], 5)
    assert line == "skipped 5 unreadable videos (passed over 5 times): 0.mp4, 1.mp4, 2.mp4, ..."
