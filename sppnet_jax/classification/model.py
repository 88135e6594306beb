"""The network a classification config asks for."""

import jax.numpy as jnp

from sppnet_jax.core.zf5 import SPPNet, ZF5, ZFNet
from sppnet_jax.errors import ConfigError

MODELS = {'sppnet': SPPNet, 'zfnet': ZFNet}


def create_model(config) -> ZF5:
  """SPPNet or ZFNet (config.model) with the config's model fields; ZFNet's one
  input size is the config's single train/eval size."""
  common = dict(
      num_classes=config.num_classes, dropout_rate=config.dropout_rate,
      lrn=config.lrn, initializer=config.initializer,
      width_multiplier=config.width_multiplier, fc_dim=config.fc_dim,
      dtype=jnp.dtype(config.dtype))
  if config.model not in MODELS:
    raise ConfigError(f'unknown model {config.model!r}: use one of '
                      f'{", ".join(MODELS)}.')
  if MODELS[config.model].any_input_size:
    return MODELS[config.model](spp_levels=tuple(config.spp_levels), **common)
  sizes = set(config.train_sizes) | {config.eval_size}
  if len(sizes) != 1:
    raise ConfigError(
        f'{config.model} trains and evaluates at one size, got train_sizes='
        f'{tuple(config.train_sizes)} and eval_size={config.eval_size}: use '
        '--config.model=sppnet for several sizes.')
  return MODELS[config.model](image_size=sizes.pop(), **common)
