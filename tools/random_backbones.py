"""Randomly initialised foreign backbones for trying the probe adapters offline, built with their libraries' own
constructors and saved their libraries' own way (nothing downloads):

- `<out>/videomae/`: a transformers VideoMAE, ViT-S (22M parameters), 8 frames at 112x112, `save_pretrained`
  with its image processor; probe it with `backbone=hf:<out>/videomae`.
- `<out>/dinov2_small.safetensors`: timm's `vit_small_patch14_dinov2`; probe it with
  `backbone=timm:vit_small_patch14_dinov2@<out>/dinov2_small.safetensors`.

    python tools/random_backbones.py --out outputs/foreign
"""

from __future__ import annotations

import argparse
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

VIDEOMAE_SMALL = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/foreign"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    videomae = VideoMAEModel(VideoMAEConfig(image_size=112, num_frames=8, **VIDEOMAE_SMALL))
    videomae.save_pretrained(args.out / "videomae")
    VideoMAEImageProcessor().save_pretrained(args.out / "videomae")
    dinov2 = timm.create_model("vit_small_patch14_dinov2", pretrained=False)
    save_file(dinov2.state_dict(), str(args.out / "dinov2_small.safetensors"))
    print(f"hf:{args.out / 'videomae'}")
    print(f"timm:vit_small_patch14_dinov2@{args.out / 'dinov2_small.safetensors'}")


if __name__ == "__main__":
    main()
