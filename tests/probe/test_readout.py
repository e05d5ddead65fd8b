"""The probe readout: per-frame queries read their own frame's tokens and nothing else."""

import torch

from fourd.models.readout import ReadoutConfig
from fourd.probe.readout import ProbeReadout


def test_per_frame_queries_read_only_their_tubelet():
    torch.manual_seed(0)
    config = ReadoutConfig(width=8, heads=2, num_queries=4, num_classes=3, mlp=16, num_frames=2, encoder_width=8)
    readout = ProbeReadout(config, (2, 2))
    torch.nn.init.normal_(readout.head.weight)  # a trained head: the new one outputs zeros
    features = torch.randn(1, 2, 4, 8)  # 2 token times (2 frames each) of 2 x 2 tokens
    queries = torch.randn(1, 3 * 4, 8)  # 3 tracks x 4 frames, (track, frame) order
    out = readout(features, queries, per_frame_of=4)
    changed = features.clone()
    changed[:, 1] = torch.randn(4, 8)  # the second tubelet: frames 2 and 3
    moved = (readout(changed, queries, per_frame_of=4) - out).abs().sum(-1).view(3, 4)
    assert (moved[:, :2] == 0).all() and (moved[:, 2:] > 1e-3).all()
    clip = readout(changed, queries)  # without per_frame_of every query reads the whole clip
    assert ((clip - readout(features, queries)).abs().sum(-1) > 1e-3).all()
