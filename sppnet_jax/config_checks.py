"""Checks a config before anything expensive runs, with one-line errors."""

import ml_collections

from sppnet_jax.eval_views import PROTOCOLS, VIEW_KINDS
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
  _validate_eval_protocol(config)
  if config.log_every_steps < 1:
    raise ValueError('config.log_every_steps must be at least 1.')


def _validate_eval_protocol(config) -> None:
  protocol, views = config.eval.protocol, config.eval.scale_views
  if protocol not in PROTOCOLS:
    raise ValueError(f'config.eval.protocol={protocol!r} is not one of {PROTOCOLS}: '
                     'set --config.eval.protocol to one of them.')
  if config.eval.full_image_step < 1:
    raise ValueError('config.eval.full_image_step must be at least 1.')
  if protocol == 'multi_scale':
    if views not in VIEW_KINDS:
      raise ValueError(f'config.eval.scale_views={views!r} is not one of '
                       f'{VIEW_KINDS}: set --config.eval.scale_views to one of them.')
    scales = tuple(config.eval.scales)
    least = config.eval_size if views != 'full_image' else min_input_size()
    if not scales or min(scales) < least:
      raise ValueError(f'config.eval.scales={scales} must be at least {least} for '
                       f'{views} views: raise them, e.g. --config.eval.scales='
                       '"(224, 256, 300, 360, 448, 560)".')
  full_images = protocol == 'full_image' or (protocol == 'multi_scale'
                                             and views == 'full_image')
  if full_images and config.model == 'zfnet':
    raise ValueError('full-image views need SPP-net: ZFNet\'s fc6 fixes its input '
                     'at eval_size; use --config.eval.protocol=center or ten_view '
                     '(or multi_scale with --config.eval.scale_views=ten_view).')


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
