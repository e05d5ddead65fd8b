"""Plot labels name each backbone by what tells it apart, not by the folder its files share."""

import pytest

from fourd.probe.backbones import backbone_label


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("hf:outputs/foreign/videomae", "hf: videomae"),
        ("timm:vit_small_patch14_dinov2@outputs/foreign/dinov2_small.safetensors", "timm: vit_small_patch14_dinov2"),
        ("outputs/demo/encoder.safetensors", "demo"),
        ("random", "random"),
    ],
)
def test_label_names_the_model_not_the_shared_folder(spec, label):
    assert backbone_label(spec) == label
