"""The GPU configuration, checked without a GPU: each training recipe composed as a GPU node sees it (CUDA with
native bf16, 8 devices, SLURM or torchrun variables), its exact Lightning plugins, strategy and optimizer built,
then what torch allows on CPU run through them (one clipped step of the recipe's fused AdamW)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy
from torch import nn

from fourd.conf import CONFIG_DIR
from fourd.devices import cluster_environment
from fourd.train.optim import OptimConfig, build_adamw
from fourd.train.parallelize import FSDP2Strategy, FSDPConfig, precision_policies
from fourd.train.precision import ClippingMixedPrecision, bf16_gpu
from fourd.train.run import trainer_arguments
from tests.helpers.configs import composed

RECIPES = sorted(p.stem for p in (Path(CONFIG_DIR) / "exp").glob("vit_*.yaml"))  # demo is the CPU recipe
SLURM = {"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "fourd-train", "SLURM_PROCID": "2", "SLURM_LOCALID": "2"}
SLURM.update({"SLURM_NTASKS_PER_NODE": "4", "SLURM_NODEID": "0", "SLURM_NODELIST": "gpu-node-1", "SLURM_JOB_ID": "77"})
TORCHRUN = {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "32", "GROUP_RANK": "0", "LOCAL_WORLD_SIZE": "8"}
TORCHRUN.update({"TORCHELASTIC_RUN_ID": "fourd", "MASTER_ADDR": "gpu-node-1", "MASTER_PORT": "29500"})
LAUNCH_VARIABLES = {*SLURM, *TORCHRUN, "SLURM_NTASKS_PER_NODE", "SLURM_STEP_NUM_TASKS"}


@pytest.fixture
def gpu_node(monkeypatch):
    """This process as seen on a node of 8 H100s (compute capability 9.0), with no launcher's variables."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def plugin_of(arguments: dict, kind: type) -> object | None:
    found = [p for p in arguments["plugins"] if isinstance(p, kind)]
    assert len(found) <= 1
    return found[0] if found else None


class OneStep(L.LightningModule):
    """A small model stepped by the recipe's optimizer, with gradients far above the recipe's clip."""

    def __init__(self, optim: OptimConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.optim = optim
        self.grad_norms: list[float] = []

    def training_step(self, batch, batch_idx):
        return 1000 * self.net(batch[0]).square().mean()

    def on_before_optimizer_step(self, optimizer):
        self.unclipped_norm = torch.nn.utils.get_total_norm([p.grad for p in self.parameters()]).item()

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.grad_norms.append(torch.nn.utils.get_total_norm([p.grad for p in self.parameters()]).item())

    def configure_optimizers(self):
        return build_adamw(self, self.optim, lr=1e-3, no_decay_names=set())


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_on_a_gpu_node_steps_once_with_its_precision_clipping_and_fused_adamw(gpu_node, tmp_path, recipe):
    cfg = composed("train", f"+exp={recipe}")
    arguments = trainer_arguments(cfg, tmp_path, tokens_per_clip=8)
    precision = plugin_of(arguments, Precision)
    assert isinstance(precision, MixedPrecision) and precision.precision == "bf16-mixed"
    assert precision.device == "cuda"
    strategy = arguments["strategy"]
    expected = {"fsdp": ModelParallelStrategy, "ddp": DDPStrategy}.get(cfg.strategy.name)
    assert strategy == "auto" if expected is None else isinstance(strategy, expected)
    clip = arguments["gradient_clip_val"]
    assert clip > 0

    gpu_node.undo()  # the step itself runs on this CPU, through the GPU run's own precision plugin
    module = OneStep(OptimConfig(**cfg.optimizer))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        gradient_clip_val=clip,
        plugins=[precision],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 16)), batch_size=4))
    assert trainer.optimizers[0].defaults["fused"] is True  # what build_adamw picks on CUDA, and on CPU
    assert module.unclipped_norm > 10 * clip
    assert module.grad_norms == [pytest.approx(clip, rel=1e-4)]
    assert any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


def test_fp16_clips_unscaled_gradients_and_steps_the_fused_kernel():
    model = nn.Linear(8, 8)
    optimizer = build_adamw(model, OptimConfig(), lr=1e-3, no_decay_names=set())
    plugin = ClippingMixedPrecision("16-mixed", "cpu")
    loss = 100 * model(torch.randn(4, 8)).square().mean()
    plugin.scaler.scale(loss).backward()
    plugin.clip_gradients(optimizer, 0.5)
    assert torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item() == pytest.approx(0.5, rel=1e-4)
    before = model.weight.detach().clone()
    plugin.scaler.step(optimizer)
    assert not torch.equal(before, model.weight)


def test_emulated_bf16_is_not_chosen(gpu_node):
    assert bf16_gpu("auto")
    gpu_node.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: emulated bf16 only
    assert not bf16_gpu("auto")
    assert not bf16_gpu("cpu")


def environment(arguments: dict) -> ClusterEnvironment:
    """The cluster environment a Trainer with these arguments uses."""
    from lightning.pytorch.trainer.connectors.accelerator_connector import _AcceleratorConnector

    chosen = plugin_of(arguments, ClusterEnvironment)
    return chosen or _AcceleratorConnector(accelerator="cpu")._choose_and_init_cluster_environment()


@pytest.mark.parametrize(
    "variables, kind, rank, world",
    [
        ({**SLURM, **TORCHRUN}, TorchElasticEnvironment, 3, 32),  # torchrun inside a SLURM allocation
        (SLURM, SLURMEnvironment, 2, 4),  # srun
        (TORCHRUN, TorchElasticEnvironment, 3, 32),
    ],
    ids=["torchrun-in-slurm", "srun", "torchrun"],
)
def test_ranks_come_from_the_launcher_that_started_the_process(gpu_node, tmp_path, variables, kind, rank, world):
    for name, value in variables.items():
        gpu_node.setenv(name, value)
    arguments = trainer_arguments(composed("train", "+exp=vit_e"), tmp_path, tokens_per_clip=8)
    chosen = environment(arguments)
    assert type(chosen) is kind
    assert (chosen.global_rank(), chosen.world_size()) == (rank, world)
    if kind is SLURMEnvironment:
        assert chosen.auto_requeue is False  # fourd's Preemption callback requeues
    assert cluster_environment() is None or type(cluster_environment()) is kind


def test_no_launcher_leaves_the_choice_to_lightning(gpu_node):
    assert cluster_environment() is None
    assert not any(k in os.environ for k in LAUNCH_VARIABLES)


class Buffered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer("scale", torch.ones(2))


@pytest.mark.parametrize("cpu_offload", [True, False])
def test_setup_leaves_offloaded_parameters_on_the_host(cpu_offload):
    """Lightning's setup moves the model to the root device; under CPU offload FSDP2 needs the parameter shards
    on the host (the meta device stands in for the GPU here)."""
    strategy = FSDP2Strategy(world_size=1, cpu_offload=cpu_offload)
    strategy.parallel_devices = [torch.device("meta")]
    strategy.model = Buffered()
    strategy.model_to_device()
    assert strategy.model.linear.weight.device.type == ("cpu" if cpu_offload else "meta")
    assert strategy.model.scale.device.type == "meta"


def test_fsdp_keeps_the_video_and_its_targets_in_fp32_under_bf16_parameters(tmp_path, monkeypatch):
    """FSDP2 gathers parameters in bf16 (as on CUDA), but the MAE's pixel targets stay fp32, as under DDP."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from fourd.conf import mae_config
    from fourd.models.mae import MaskedAutoencoder

    model = MaskedAutoencoder(mae_config(composed("train", "+exp=demo").model))
    seen = []
    targets = model.targets
    monkeypatch.setattr(model, "targets", lambda tubelets: seen.append(tubelets.dtype) or targets(tubelets))
    block_policy, root_policy = precision_policies(FSDPConfig(), torch.device("cuda"))
    assert block_policy.param_dtype == root_policy.param_dtype == torch.bfloat16
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh, mp_policy=block_policy)
        fully_shard(model, mesh=mesh, mp_policy=root_policy)
        e = model.config.encoder
        video = torch.rand(2, e.in_chans, *(g * p for g, p in zip(e.grid, e.patch_size, strict=True)))
        loss = model(video, generator=torch.Generator().manual_seed(0)).loss
    finally:
        dist.destroy_process_group()
    assert seen == [torch.float32] and torch.isfinite(loss)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_offload_trains_under_fourd_train(tmp_path):
    """`strategy.cpu_offload=true` through Lightning's setup: FSDP2 accepts the host shards and the run steps."""
    import subprocess
    import sys

    from tests.helpers import REPO

    overrides = ["strategy=fsdp", "strategy.cpu_offload=true", "trainer.accelerator=gpu", "trainer.devices=1"]
    overrides += ["trainer.max_steps=2", "data.num_workers=0", "images.every_n_steps=0", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "fourd.train", "+exp=demo", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "encoder.safetensors").exists()
