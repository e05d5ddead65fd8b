"""fourd's Hydra configs, shipped inside the package: the one `compose` outside a Hydra main, and the model
config groups turned into model configs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, OmegaConf

from fourd.conf.search_path import PACKAGED_DIR, UserConfigs
from fourd.errors import ConfigError

if TYPE_CHECKING:  # imported where a config is built: the Hydra mains need CONFIG_DIR, not torch
    from fourd.models.mae import MAEConfig
    from fourd.models.vit import ViTConfig

CONFIG_DIR = str(PACKAGED_DIR)
Plugins.instance().register(UserConfigs)  # conf/ or FOURD_CONF searched before CONFIG_DIR (search_path.py)


def compose(config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config `python -m fourd.<config_name> OVERRIDES...` runs with (`train` or `probe`), the user's `conf/`
    searched first; Hydra's own settings (run dir, launcher) only with `return_hydra_config`."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


ENCODER_FIELDS = ("width", "depth", "heads", "mlp", "patch_size", "num_frames", "image_size", "attn_backend")


@contextmanager
def config_group(name: str) -> Iterator[None]:
    """Raise a bad value (ValueError) or key (TypeError) found inside as a ConfigError naming the config group
    it is about (`model: ... depth=0`)."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{name}: {err}") from err


def encoder_config(model: Mapping[str, Any], group: str = "model") -> ViTConfig:
    """The encoder of a `model` config group (mounted at `group`): a registry size plus the fields it overrides."""
    from fourd.models.vit import ViTConfig

    m = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    with config_group(group):
        return ViTConfig.from_size(m["size"], **{k: m[k] for k in ENCODER_FIELDS if k in m})


def mae_config(model: Mapping[str, Any]) -> MAEConfig:
    """The MAE of a `model` config group (encoder, decoder, masking)."""
    from fourd.models.mae import DecoderConfig, MAEConfig

    m = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    encoder = encoder_config(m)
    with config_group("model"):
        return MAEConfig(
            encoder=encoder,
            decoder=DecoderConfig(**m["decoder"]),
            mask_ratio=m["mask_ratio"],
            masking=m["masking"],
            norm_pix_loss=m["norm_pix_loss"],
        )
