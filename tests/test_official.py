"""The encoder reproduces the official JAX feature list on the r4d_tiny fixtures."""

import pytest
import torch

from fourd.models.vit import SpaceTimeViT
from fourd.official import encoder_state_from_official, find_encoder_prefix, infer_encoder_config
from tests.helpers import load_fixture_pair


@pytest.mark.parametrize("strong,tol", [(False, 1e-5), (True, 5e-5)])
@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_encoder_features_match_jax(fixtures_dir, strong, tol, backend):
    params, io = load_fixture_pair(fixtures_dir, strong)
    prefix = find_encoder_prefix(set(params))
    config = infer_encoder_config(params, prefix)
    config.attn_backend = backend
    model = SpaceTimeViT(config).eval()
    state, used = encoder_state_from_official(params, prefix, config.depth)
    model.load_state_dict(state, strict=True)
    assert used == {k for k in params if k.startswith(prefix + "encoder/") or k.startswith(prefix + "processor/")}
    video = torch.from_numpy(io["video"]).permute(0, 4, 1, 2, 3)
    with torch.no_grad():
        feats = model.features(video)
    assert len(feats) == config.depth + 1
    for i, feat in enumerate(feats):
        err = (feat - torch.from_numpy(io[f"features_{i}"])).abs().max().item()
        assert err <= tol, f"features_{i}: max abs error {err:.2e} > {tol:.0e}"
