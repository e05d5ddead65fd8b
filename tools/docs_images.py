"""Regenerate the images of docs/ from a probe results file: `scaling.png` (each task's headline metric against
encoder parameters, the report's plot) and one picture of predictions per task, `probe_<task>.png`, taken from
the run folder of the chosen backbone's seed-0 probe (the picture every probe writes next to its log).

    python tools/docs_images.py outputs/probe_results.jsonl --backbone outputs/demo/encoder.safetensors
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from fourd.probe.results import read_result_lines, read_results, scaling_plot

MAX_WIDTH = 1200  # pixels: the pictures stay small enough to keep in the repository


def probe_pictures(results: Path, backbone: str, seed: int) -> dict[str, Path]:
    """{task: the picture of predictions written by the probe of `backbone` with `seed`}, for each task it ran."""
    return {
        record["task"]: Path(record["run_dir"]) / f"{record['task']}.png"
        for record in read_result_lines(results)
        if record["backbone"] == backbone and record["seed"] == seed and record.get("run_dir")
    }


def save_small(source: Path, target: Path) -> None:
    """`source` as a PNG of at most MAX_WIDTH pixels across, in 256 colours."""
    image = Image.open(source).convert("RGB")
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.Resampling.LANCZOS)
    image.quantize(256).save(target, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a probe results file (outputs/probe_results.jsonl)")
    parser.add_argument("--backbone", default="outputs/demo/encoder.safetensors", help="whose predictions to show")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_small(scaling_plot(read_results(args.results), Path(tmp) / "scaling.png"), args.out / "scaling.png")
    pictures = probe_pictures(args.results, args.backbone, args.seed)
    if not pictures:
        raise SystemExit(f"error: {args.results} holds no probe of backbone={args.backbone} seed={args.seed}")
    for task, picture in sorted(pictures.items()):
        save_small(picture, args.out / f"probe_{task}.png")
    print(f"wrote {args.out}/scaling.png and " + ", ".join(f"probe_{task}.png" for task in sorted(pictures)))


if __name__ == "__main__":
    main()
