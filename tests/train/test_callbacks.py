"""Reconstruction pictures: one image of input / masked / reconstruction rows, on the same clips across resumes."""

import torch

from fourd.train.callbacks import ReconstructionImages, reconstruction_grid


def test_grid_has_three_rows_per_clip_and_one_column_per_frame():
    clips = torch.rand(2, 3, 4, 16, 16)
    grid = reconstruction_grid(clips, clips * 0.5, clips, max_frames=8)
    rows, columns = 2 * 3, 4
    assert grid.shape == (3, rows * 18 + 2, columns * 18 + 2)  # 2-pixel padding around every frame


def test_clips_travel_with_the_checkpoint():
    saved = ReconstructionImages("unused", every_n_steps=10, num_clips=2)
    assert saved.state_dict() == {}
    saved.clips = torch.randint(0, 255, (2, 3, 4, 16, 16), dtype=torch.uint8)
    resumed = ReconstructionImages("unused", every_n_steps=10, num_clips=2)
    resumed.load_state_dict(saved.state_dict())
    assert torch.equal(resumed.clips, saved.clips)
