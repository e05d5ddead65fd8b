"""Pictures: tiles in place, and row labels in a margin that leaves the tiles untouched."""

import numpy as np
from PIL import Image

from fourd.viz import save_grid


def test_rows_are_tiled_and_labelled_on_the_left(tmp_path):
    red, blue = np.zeros((8, 10, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    rows = [[red, blue], [blue, red]]
    plain = np.asarray(Image.open(save_grid(rows, tmp_path / "plain.png")))
    labelled = np.asarray(Image.open(save_grid(rows, tmp_path / "labelled.png", ["truth", "prediction"])))
    margin = labelled.shape[1] - plain.shape[1]
    assert plain.shape == (2 + 2 * 10, 2 + 2 * 12, 3) and labelled.shape[0] == plain.shape[0] and margin > 20
    np.testing.assert_array_equal(labelled[:, margin:], plain)  # the tiles, shifted right by the margin
    text = labelled[:, :margin].min(axis=2) < 128
    assert text[2:10].any() and text[12:20].any()  # a dark label beside each row
