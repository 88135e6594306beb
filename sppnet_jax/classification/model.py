"""The network a classification config asks for."""

import jax.numpy as jnp

from sppnet_jax.core.zf5 import Network, NoSPPNet, SPPNet, ZFNet
from sppnet_jax.errors import ConfigError

# 'zfnet' is ZF-5's 'nospp' (config.validate_config keeps it to zf5).
MODELS = {'sppnet': SPPNet, 'nospp': NoSPPNet, 'zfnet': ZFNet}


def create_model(config) -> Network:
  """SPPNet, NoSPPNet or ZFNet (config.model) of config.architecture with the
  config's model fields; a no-SPP net's one input size is the config's single
  train/eval size."""
  common = dict(
      num_classes=config.num_classes, dropout_rate=config.dropout_rate,
      lrn=config.lrn, initializer=config.initializer,
      width_multiplier=config.width_multiplier, fc_dim=config.fc_dim,
      dtype=jnp.dtype(config.dtype), architecture=config.architecture)
  if config.model not in MODELS:
    raise ConfigError(f'unknown model {config.model!r}: use one of '
                      f'{", ".join(MODELS)}.')
  if config.model == 'zfnet' and config.architecture != 'zf5':
    raise ConfigError(f'model zfnet is ZF-5\'s no-SPP net, not '
                      f'{config.architecture}\'s: use --config.model=nospp.')
  if MODELS[config.model].any_input_size:
    return MODELS[config.model](spp_levels=tuple(config.spp_levels), **common)
  sizes = set(config.train_sizes) | {config.eval_size}
  if len(sizes) != 1:
    raise ConfigError(
        f'{config.model} trains and evaluates at one size, got train_sizes='
        f'{tuple(config.train_sizes)} and eval_size={config.eval_size}: use '
        '--config.model=sppnet for several sizes.')
  return MODELS[config.model](image_size=sizes.pop(), **common)
