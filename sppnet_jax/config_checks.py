"""Checks a config before anything expensive runs, with one-line errors."""

import ml_collections

from sppnet_jax.models import min_input_size

_CHOICES = {
    'model': ('sppnet', 'zfnet'),
    'lrn': ('within_channel', 'across_channel', 'none'),
    'initializer': ('caffe', 'he'),
    'dtype': ('float32', 'bfloat16'),
    'size_schedule': ('epoch', 'step'),
}


def validate_config(config: ml_collections.ConfigDict) -> None:
  for field, choices in _CHOICES.items():
    if config[field] not in choices:
      raise ValueError(f'config.{field}={config[field]!r} is not one of {choices}: '
                       f'set --config.{field} to one of them.')
  sizes = tuple(config.train_sizes)
  smallest = min_input_size()
  if not sizes or min(sizes + (config.eval_size,)) < smallest:
    raise ValueError(
        f'train_sizes={sizes} and eval_size={config.eval_size} must be at least '
        f'{smallest} (the smallest input ZF-5 accepts): raise them.')
  if config.eval_resize < config.eval_size:
    raise ValueError(f'config.eval_resize={config.eval_resize} is smaller than '
                     f'config.eval_size={config.eval_size}: the centre crop must fit.')
  if not config.spp_levels or min(config.spp_levels) < 1:
    raise ValueError(f'config.spp_levels={tuple(config.spp_levels)} needs positive '
                     'levels, e.g. --config.spp_levels="(6, 3, 2, 1)".')
  if config.log_every_steps < 1:
    raise ValueError('config.log_every_steps must be at least 1.')


def resolve_config(config: ml_collections.ConfigDict,
                   info) -> ml_collections.ConfigDict:
  """A validated copy with num_classes taken from the data where it is -1."""
  config = ml_collections.ConfigDict(config.to_dict())
  validate_config(config)
  if config.num_classes == -1:
    config.num_classes = info.num_classes
  elif config.num_classes != info.num_classes:
    raise ValueError(
        f'config.num_classes={config.num_classes} but the {config.dataset} data has '
        f'{info.num_classes} classes: set --config.num_classes={info.num_classes} '
        '(or -1 to follow the data).')
  return config
