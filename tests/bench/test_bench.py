"""The plain reference MAE equals fourd's, the timing helpers, and tools/bench.py in all three modes."""

import json
import math
import subprocess
import sys
import time

import pytest
import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from fourd.bench.build import single_process_group
from fourd.bench.loader import loader_clips_per_s
from fourd.bench.peer import build_hf_videomae, hf_loss
from fourd.bench.reference import ReferenceMAE
from fourd.bench.run import BenchOptions, bench_forward, bench_train, compose_train
from fourd.bench.timing import matmul_peak_flops, time_rounds, warm_up
from fourd.conf import mae_config
from fourd.models.flops import mae_flops
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder
from fourd.models.vit import SpaceTimeViT, ViTConfig, count_parameters
from fourd.models.zoo import parameter_counts
from fourd.train.parallelize import FSDPConfig, build_mae
from tests.helpers import REPO
from tests.helpers.videos import write_test_video

TINY = [
    "model.width=32",
    "model.depth=1",
    "model.heads=2",
    "model.mlp=64",
    "model.num_frames=4",
    "model.image_size=32",
    "model.decoder.width=32",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
    "model.decoder.mlp=64",
    "data.batch_size=2",
]
REQUIRED = {
    "exp",
    "device",
    "dtype",
    "batch",
    "mask_ratio",
    "attn",
    "compile",
    "activation_checkpointing",
    "params",
    "clips_per_s",
    "tokens_per_s",
    "tflops",
    "mfu",
    "peak_mem_gb",
    "reference_clips_per_s",
    "speedup",
}


def tiny_config(attn_backend: str = "auto", **kwargs) -> MAEConfig:
    encoder = ViTConfig(
        width=32, depth=2, heads=4, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32, attn_backend=attn_backend
    )
    return MAEConfig(encoder=encoder, decoder=DecoderConfig(32, 1, 2, 48), mask_ratio=0.75, **kwargs)


@pytest.mark.parametrize("masking", ["random", "tube"])
@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_reference_loads_fourd_weights_and_gives_the_same_loss_and_gradients(masking, norm_pix_loss):
    config = tiny_config(masking=masking, norm_pix_loss=norm_pix_loss)
    model, reference = MaskedAutoencoder(config), ReferenceMAE(config)
    reference.load_state_dict(model.state_dict(), strict=True)
    video = torch.rand(2, 3, 4, 32, 32)
    masking = model.mask(2, video.device)
    loss, ref_loss = model(video, masking=masking).loss, reference(video, masking)
    assert abs(loss.item() - ref_loss.item()) < 1e-5
    loss.backward()
    ref_loss.backward()
    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, ref_params[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fourd_counts_the_analytic_flops_and_the_reference_embeds_hidden_tubelets_too():
    # fourd's reference backend: FlopCounterMode does not count the CPU flash SDPA kernel
    config = tiny_config(attn_backend="reference")
    e = config.encoder
    hidden_embedding = 2 * (math.prod(e.grid) - config.visible_tokens) * math.prod(e.patch_size) * e.in_chans * e.width
    model, reference = MaskedAutoencoder(config), ReferenceMAE(config)
    video = torch.rand(2, 3, 4, 32, 32)
    masking = model.mask(2, video.device)
    with FlopCounterMode(display=False) as fourd_count:
        model(video, masking=masking)
    with FlopCounterMode(display=False) as reference_count:
        reference(video, masking)
    assert fourd_count.get_total_flops() == 2 * mae_flops(config)["total"]
    assert reference_count.get_total_flops() == 2 * (mae_flops(config)["total"] + hidden_embedding)


def test_rounds_interleave_and_warm_up_reports_memory():
    calls = []
    times = time_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, torch.device("cpu"))
    assert calls == ["a", "b"] * 3 and {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    held = []

    def step() -> None:
        calls.append("w")
        held.append(torch.ones(128 * 2**20))  # 512 MiB touched: the process's peak RSS passes it

    _, memory = warm_up(lambda: step, 2, torch.device("cpu"))
    assert calls[-3:] == ["w"] * 3 and memory >= 3 * 0.5 * 2**30 / 1e9  # CPU: the process's peak RSS, in GB


def assert_consistent_rates(out: dict) -> None:
    """Every rate follows from the one measured step time: clips, tokens (4 x 4 x 2 per tiny clip) and FLOPs, each
    within its rounding and that of step_ms (3 decimals: 1.6e-4 of a 3 ms step), whatever the machine's speed."""
    seconds = out["step_ms"] / 1e3
    rel = 5e-4 / out["step_ms"] + 1e-6
    assert out["clips_per_s"] == pytest.approx(out["batch"] / seconds, rel=rel, abs=5e-4)
    assert out["tokens_per_s"] == pytest.approx(out["batch"] * 2 * 4 * 4 / seconds, rel=rel, abs=5e-2)
    assert out["tflops"] == pytest.approx(out["flops_per_step"] / seconds / 1e12, rel=rel + 2e-3, abs=5e-6)


def run_bench(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "tools/bench.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_cli_prints_one_json_line_with_the_reference_comparison():
    out = run_bench("--exp", "demo", "--steps", "2", "--warmup", "1", "--compare-reference", "--device", "cpu", *TINY)
    assert REQUIRED <= set(out)
    assert out["device"] == "cpu" and out["dtype"] == "fp32" and out["batch"] == 2 and out["attn"] == "sdpa"
    assert out["mfu"] is None
    assert_consistent_rates(out)
    assert out["speedup"] == pytest.approx(out["clips_per_s"] / out["reference_clips_per_s"], rel=5e-3)


def test_cli_loader_times_the_training_loader():
    out = run_bench(
        "--exp",
        "demo",
        "--loader",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        *TINY,
        "data.num_workers=1",
        "data.dataset.num_clips=16",
    )
    assert out["mode"] == "loader" and out["num_workers"] == 1 and out["batch"] == 2 and out["batches"] == 2


def test_cli_loader_on_videos_reports_the_decode_limit_and_what_a_gpu_would_consume(tmp_path):
    for name in "abcd":
        write_test_video(tmp_path / f"{name}.mp4")
    video = [
        *("data=video", f"data.dataset.source={tmp_path}", "data.num_workers=0", "data.repeated_sampling=2"),
        "data.dataset.decode_short_side=32",
        "data.dataset.augment=device",  # the bench crops the batches as training would, after the transfer
    ]
    out = run_bench(
        *("--exp", "demo", "--loader", "--steps", "2", "--warmup", "1", "--device", "cpu"),
        *("--mfu", "0.5", "--gpu-tflops", "100"),
        *TINY,
        *video,
    )
    flops_per_clip = 3 * mae_flops(mae_config(compose_train("demo", [*TINY, *video[:2]]).model))["total"]
    assert out["gpu_demand_clips_per_s"] == pytest.approx(0.5 * 100e12 / flops_per_clip, abs=0.05)
    assert out["gpu_assumed"] == {"mfu": 0.5, "peak_tflops": 100.0}
    assert out["repeated_sampling"] == 2 and out["decode_short_side"] == 32 and out["batch"] == 2
    assert out["augment"] == "device"
    assert out["of_decode_limit"] == pytest.approx(out["clips_per_s"] / out["decode_limit_clips_per_s"], rel=5e-3)
    assert out["workers_to_keep_up"] == pytest.approx(out["gpu_demand_clips_per_s"] / out["clips_per_s"], rel=5e-3)


class SlowClips(Dataset):
    """Clips that take 20 ms each to make: a loader on one process can deliver at most 50 per second."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> dict:
        time.sleep(0.02)
        return {"video": torch.zeros(3, 2, 4, 4, dtype=torch.uint8)}


def test_loader_rate_is_the_clips_delivered_per_second():
    rate = loader_clips_per_s(DataLoader(SlowClips(), batch_size=4), batches=5, warmup=1, device=torch.device("cpu"))
    assert 25 < rate <= 50


def test_forward_only_runs_the_encoder_in_bf16():
    cfg = compose_train("demo", [*TINY, "model.attn_backend=reference"])
    out = bench_forward("demo", cfg, BenchOptions("cpu", "bf16", steps=1, warmup=0))
    assert out["mode"] == "forward" and out["dtype"] == "bf16"
    seconds = out["step_ms"] / 1e3
    assert out["clips_per_s"] == pytest.approx(out["batch"] / seconds, rel=2e-3)
    assert out["params"] == count_parameters(SpaceTimeViT(mae_config(cfg.model).encoder))  # the encoder alone


def test_train_step_shards_with_fsdp_on_one_rank_with_checkpointing():
    cfg = compose_train("demo", [*TINY, "strategy=fsdp"])
    out = bench_train("demo", cfg, BenchOptions("cpu", "fp32", steps=1, warmup=0))
    assert out["strategy"] == "fsdp" and out["activation_checkpointing"] and out["speedup"] is None
    assert out["flops_per_step"] == 3 * mae_flops(mae_config(cfg.model))["total"] * 2  # forward + backward, 2 clips
    assert_consistent_rates(out)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_matmul_peak_and_mfu_on_gpu():
    assert matmul_peak_flops(torch.device("cuda"), size=4096, repeats=3, trials=2) > 1e12
    cfg = compose_train("demo", TINY)
    out = bench_train("demo", cfg, BenchOptions("cuda", "bf16", steps=3, warmup=2, compare_reference=True))
    assert 0 < out["mfu"] < 1 and out["peak_tflops"] > 1 and out["peak_mem_gb"] > 0
    assert out["mfu"] == pytest.approx(out["tflops"] / out["peak_tflops"], rel=2e-2)
    assert out["speedup"] == pytest.approx(out["clips_per_s"] / out["reference_clips_per_s"], rel=5e-3)


def test_cpu_offload_without_cuda_is_refused_with_a_reason():
    cfg = compose_train("demo", [*TINY, "strategy=fsdp", "strategy.cpu_offload=true"])
    with pytest.raises(ValueError, match="cpu_offload needs a CUDA device"):
        bench_train("demo", cfg, BenchOptions("cpu", "fp32", steps=1, warmup=0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_offload_trains_on_gpu_with_host_shards():
    cfg = compose_train("demo", [*TINY, "strategy=fsdp", "strategy.cpu_offload=true"])
    device = torch.device("cuda")
    with single_process_group(device):
        model = build_mae(mae_config(cfg.model), device, init_device_mesh("cuda", (1,)), FSDPConfig(cpu_offload=True))
        assert {p.to_local().device.type for p in model.parameters()} == {"cpu"}  # the shards live on the host
        video = torch.rand(2, 3, 4, 32, 32, device=device)
        model(video).loss.backward()
        assert {p.grad.to_local().device.type for p in model.parameters()} == {"cpu"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dtype", "fp16"], "error: --dtype fp16: choose one of fp32, bf16"),
        (["--attn", "flash"], "error: model: unknown attention backend 'flash'"),
        (["--exp", "nope"], "error: In 'train': Could not find 'exp/nope'"),
    ],
)
def test_cli_names_a_bad_option_in_one_line(args, message):
    proc = subprocess.run(
        [sys.executable, "tools/bench.py", *args, "--steps", "1"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message)


def test_the_hf_peer_trains_the_same_shapes_with_as_many_visible_tokens():
    import transformers

    cfg = compose_train("demo", [*TINY, "model.mask_ratio=0.75"])
    config = mae_config(cfg.model)
    peer = build_hf_videomae(config, torch.device("cpu"))
    assert isinstance(peer, transformers.VideoMAEForPreTraining)
    seen = []
    peer.videomae.encoder.layer[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    loss = hf_loss(peer, config, torch.rand(2, 3, 4, 32, 32))()
    loss.backward()
    assert seen == [torch.Size([2, config.visible_tokens, 32])] and torch.isfinite(loss)
    fourd_params = parameter_counts(config)["total"]
    assert abs(count_parameters(peer) - fourd_params) / fourd_params < 0.05  # same shapes, a few biases apart


def test_cli_compare_hf_times_the_peer_in_turn():
    out = run_bench(
        "--exp", "demo", "--steps", "2", "--warmup", "1", "--compare-hf", "--profile", "1", "--device", "cpu", *TINY
    )
    assert out["speedup_over_hf"] == pytest.approx(out["clips_per_s"] / out["hf_clips_per_s"], rel=5e-3)
    assert out["speedup"] is None and out["reference_clips_per_s"] is None  # only the peer asked for ran
    hf = out["profile"]["hf"]
    assert set(out["profile"]) == {"fourd", "hf"} and hf["gemm"] > 0 and hf["conv"] > 0  # the peer embeds by Conv3d
    bound = sum(hf.values()) / (hf["gemm"] + hf["attention"])
    assert out["speedup_over_hf_bound"] == pytest.approx(bound, rel=1e-2)  # of times rounded to 1 µs


def test_make_videos_adds_to_its_own_folder_but_not_to_one_of_other_files(tmp_path):
    def make(folder, *extra):
        return subprocess.run(
            [sys.executable, "tools/bench.py", "--make-videos", str(folder), "--num-videos", "1", *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.mp4").write_bytes(b"my video")
    proc = make(mine)
    assert (
        proc.returncode == 1
        and "did not write" in proc.stderr
        and sorted(p.name for p in mine.iterdir()) == ["holiday.mp4"]
    )
    ours = tmp_path / "ours"
    (ours / "clip_000.mp4").parent.mkdir()
    (ours / "clip_000.mp4").write_bytes(b"kept")  # one of ours, from an earlier run
    assert make(ours).returncode == 0 and (ours / "clip_000.mp4").read_bytes() == b"kept"
    assert make(mine, "--overwrite").returncode == 0 and (mine / "clip_000.mp4").stat().st_size > 1000
