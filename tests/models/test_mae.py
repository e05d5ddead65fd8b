import pytest
import torch

from fourd.models.mae import (
    DecoderConfig,
    MAEConfig,
    MaskedAutoencoder,
    random_masking,
    tube_masking,
    unpatchify,
    visible_count,
)
from fourd.models.vit import ViTConfig, patchify

ENCODER = dict(width=32, depth=2, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)


def tiny_mae(**kw) -> MaskedAutoencoder:
    return MaskedAutoencoder(MAEConfig(encoder=ViTConfig(**ENCODER), decoder=DecoderConfig(32, 1, 2, 64), **kw))


@pytest.mark.parametrize("make", [random_masking, tube_masking])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9, 0.95])
def test_masking_invariants(make, ratio):
    grid = (4, 6, 5)
    m = make(3, grid, ratio, generator=torch.Generator().manual_seed(0))
    n = 4 * 6 * 5
    expected_visible = visible_count(n, ratio) if make is random_masking else 4 * visible_count(30, ratio)
    assert m.ids_keep.shape == (3, expected_visible)
    assert (m.mask == 0).sum(1).tolist() == [expected_visible] * 3  # exact visible count per clip
    # ids_keep are exactly the visible tokens, and ids_restore inverts the shuffle
    for b in range(3):
        assert set(m.ids_keep[b].tolist()) == set(torch.nonzero(m.mask[b] == 0).flatten().tolist())
    shuffled = torch.cat([m.ids_keep, torch.nonzero(m.mask)[:, 1].view(3, -1)], dim=1)
    torch.testing.assert_close(torch.gather(shuffled, 1, m.ids_restore), torch.arange(n).expand(3, n))


def test_tube_masking_shares_the_spatial_mask_over_time():
    m = tube_masking(2, (4, 3, 3), 0.6, generator=torch.Generator().manual_seed(1))
    per_time = m.mask.view(2, 4, 9)
    assert (per_time == per_time[:, :1]).all()


def test_masking_differs_between_clips_and_is_seeded():
    a = random_masking(2, (2, 4, 4), 0.75, generator=torch.Generator().manual_seed(3))
    b = random_masking(2, (2, 4, 4), 0.75, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.mask, b.mask)
    assert not torch.equal(a.mask[0], a.mask[1])


def test_bad_settings_rejected():
    with pytest.raises(ValueError, match="mask ratio"):
        visible_count(10, 1.0)
    with pytest.raises(ValueError, match="masking"):
        MAEConfig(masking="block")
    with pytest.raises(ValueError, match=r"^mask_ratio='abc' must be a number"):
        MAEConfig(mask_ratio="abc")
    with pytest.raises(ValueError, match=r"^norm_pix_loss='banana' must be true or false"):
        MAEConfig(norm_pix_loss="banana")


def test_patchify_roundtrip_and_order():
    video = torch.rand(2, 3, 4, 16, 24)
    patches = patchify(video, (2, 8, 8))
    assert patches.shape == (2, 2 * 2 * 3, 2 * 8 * 8 * 3)
    torch.testing.assert_close(unpatchify(patches, (2, 8, 8), (2, 2, 3)), video)
    # token 1 is (t=0, h=0, w=1); its first value is pixel (c=0, t=0, y=0, x=8)
    assert patches[0, 1, 0] == video[0, 0, 0, 0, 8]


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_only_on_hidden_tokens(norm_pix):
    model = tiny_mae(mask_ratio=0.75, norm_pix_loss=norm_pix)
    video = torch.rand(2, 3, 4, 32, 32)
    out = model(video, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(out.loss, out.pred, retain_graph=True)
    per_token = grad.abs().sum(-1)
    assert (per_token[out.mask == 0] == 0).all()
    assert (per_token[out.mask == 1] > 0).all()
    target = model.targets(patchify(video, (2, 8, 8)))
    per_token_mse = (out.pred - target).pow(2).mean(-1)  # the MAE loss: mean over hidden tokens
    torch.testing.assert_close(out.loss, (per_token_mse * out.mask).sum() / out.mask.sum())


def test_norm_pix_targets_are_normalised_per_patch():
    model = tiny_mae(norm_pix_loss=True)
    target = model.targets(patchify(torch.rand(1, 3, 4, 32, 32), (2, 8, 8)))
    torch.testing.assert_close(target.mean(-1), torch.zeros(target.shape[:2]), atol=1e-5, rtol=0)


def test_backward_reaches_encoder_and_decoder():
    model = tiny_mae(mask_ratio=0.5)
    model(torch.rand(2, 3, 4, 32, 32)).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_reconstruct_pastes_visible_input():
    model = tiny_mae(mask_ratio=0.5, norm_pix_loss=True)
    video = torch.rand(2, 3, 4, 32, 32)
    rec = model.reconstruct(video, generator=torch.Generator().manual_seed(0))
    for v in rec:
        assert v.shape == video.shape
    same = (rec.pasted == video).all(dim=1).float().mean()  # half the tubelets are the input itself
    assert 0.45 < same < 0.55
    assert (rec.masked[rec.masked != video] == 0.5).all()


@pytest.mark.parametrize("per_block", [True, False])
def test_compiled_model_keeps_names_and_outputs(per_block):
    model = tiny_mae(mask_ratio=0.5).eval()
    names = set(model.state_dict())
    video = torch.rand(1, 3, 4, 32, 32)
    masking = model.mask(1, video.device, torch.Generator().manual_seed(0))
    eager = model(video, masking=masking).loss
    model.compile_for_training(per_block=per_block)
    assert set(model.state_dict()) == names  # no _orig_mod. prefixes
    torch.testing.assert_close(model(video, masking=masking).loss, eager, atol=1e-5, rtol=1e-5)
