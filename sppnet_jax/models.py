"""ZF-5 (Zeiler & Fergus' fast model) with a pool5 baseline head or an SPP head.

The geometry follows the authors' released ZF-5 definition (see SPPNET.md):
conv1 7x7/2 pad 1, within-channel LRN, Caffe ceil-mode 3x3/2 max pooling,
conv2 5x5/2, three 3x3 convolutions, then either a fixed 3x3/2 max pool (ZFNet,
224x224 inputs only) or spatial pyramid pooling (SPPNet, any size from
`min_input_size()` up), and fc6/fc7 (ReLU, dropout) and fc8 logits.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.spp import spatial_pyramid_pool

# ImageNet channel statistics on the 0..255 scale; images travel as uint8 and are
# normalised on the device (inside the jitted step and the exported function).
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)

# (kernel, stride, padding) of every layer that changes the spatial size, in order.
_CONV1 = (7, 2, 1)
_POOL = (3, 2)
_CONV2 = (5, 2, 0)
_ZF5_CHANNELS = (96, 256, 384, 384, 256)
# The authors' bias constants per layer (Caffe definition), used by init='caffe'.
_CAFFE_BIAS = {'conv1': 0., 'conv2': 1., 'conv3': 0., 'conv4': 1., 'conv5': 1.,
               'fc6': 1., 'fc7': 1., 'fc8': 1.}


def normalize_images(images: jnp.ndarray, dtype: Any = jnp.float32) -> jnp.ndarray:
  """uint8 (or float 0..255) RGB images to mean/std-normalised `dtype`."""
  images = images.astype(jnp.float32)
  images = (images - jnp.asarray(MEAN_RGB)) / jnp.asarray(STDDEV_RGB)
  return images.astype(dtype)


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
  return (size + 2 * pad - kernel) // stride + 1


def _ceil_pool_out(size: int, window: int, stride: int) -> int:
  """Caffe's ceil-mode output size: ceil((a - k) / s) + 1."""
  return -(-(size - window) // stride) + 1


def conv5_size(input_size: int) -> int:
  """Side of the conv5 map for an input side (<= 0 when the input is too small)."""
  size = _conv_out(input_size, *_CONV1)
  if size < 1:
    return 0
  size = _ceil_pool_out(size, *_POOL)
  if size < 1:
    return 0
  size = _conv_out(size, *_CONV2)
  if size < 1:
    return 0
  return max(_ceil_pool_out(size, *_POOL), 0)


@functools.cache
def min_input_size() -> int:
  """The smallest input side for which every ZF-5 layer has an output."""
  return next(s for s in range(1, 1024) if conv5_size(s) >= 1)


def max_pool_ceil(x: jnp.ndarray, window: int = 3, stride: int = 2) -> jnp.ndarray:
  """Caffe ceil-mode max pooling: the last window may run past the edge and then
  sees only real pixels (the missing bottom/right part is padded with -inf)."""
  pads = []
  for size in x.shape[1:3]:
    out = _ceil_pool_out(size, window, stride)
    pads.append((0, max((out - 1) * stride + window - size, 0)))
  return nn.max_pool(x, (window, window), (stride, stride), padding=pads)


class LocalResponseNorm(nn.Module):
  """Caffe's LRN: y = x / (k + alpha * mean(x^2 over the window))^beta.

  'within_channel' (the authors' ZF-5) averages over a size x size spatial window
  with zero padding, always dividing by size^2; 'across_channel' (AlexNet) averages
  over `size` neighbouring channels.
  """
  mode: str = 'within_channel'
  size: int = 3
  alpha: float = 5e-5
  beta: float = 0.75
  k: float = 1.0

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    half = (self.size - 1) // 2
    pad = (half, self.size - 1 - half)
    squares = jnp.square(x.astype(jnp.float32))
    if self.mode == 'within_channel':
      window, padding = (1, self.size, self.size, 1), ((0, 0), pad, pad, (0, 0))
      count = self.size * self.size
    elif self.mode == 'across_channel':
      window, padding = (1, 1, 1, self.size), ((0, 0), (0, 0), (0, 0), pad)
      count = self.size
    else:
      raise ValueError(f"unknown LRN mode {self.mode!r}: use 'within_channel', "
                       "'across_channel' or 'none'.")
    sums = jax.lax.reduce_window(squares, 0., jax.lax.add, window, (1, 1, 1, 1),
                                 padding)
    scale = self.k + (self.alpha / count) * sums
    return (x.astype(jnp.float32) * scale ** -self.beta).astype(x.dtype)


class _ZF5(nn.Module):
  """The shared ZF-5 trunk and fc6-fc8 head; subclasses choose pool5."""
  num_classes: int = 1000
  dropout_rate: float = 0.5
  lrn: str = 'within_channel'
  initializer: str = 'caffe'
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  dtype: Any = jnp.float32

  def _initializers(self, name: str, fan_out_last: bool = False):
    if self.initializer == 'caffe':
      return (nn.initializers.normal(0.01),
              nn.initializers.constant(_CAFFE_BIAS[name]))
    if self.initializer == 'he':
      scale = 1.0 if fan_out_last else 2.0
      return (nn.initializers.variance_scaling(scale, 'fan_in', 'normal'),
              nn.initializers.zeros)
    raise ValueError(f"unknown initializer {self.initializer!r}: use 'caffe' or 'he'.")

  def _conv(self, x, index: int, kernel: int, stride: int, pad: int):
    name = f'conv{index + 1}'
    features = max(1, int(round(_ZF5_CHANNELS[index] * self.width_multiplier)))
    kernel_init, bias_init = self._initializers(name)
    x = nn.Conv(features, (kernel, kernel), (stride, stride),
                padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                kernel_init=kernel_init, bias_init=bias_init, name=name)(x)
    return nn.relu(x)

  def _norm(self, x):
    return x if self.lrn == 'none' else LocalResponseNorm(self.lrn)(x)

  def _dense(self, x, name: str, features: int):
    kernel_init, bias_init = self._initializers(name, fan_out_last=name == 'fc8')
    return nn.Dense(features, dtype=self.dtype, kernel_init=kernel_init,
                    bias_init=bias_init, name=name)(x)

  def pool5(self, x: jnp.ndarray) -> jnp.ndarray:
    raise NotImplementedError

  def check_input(self, x: jnp.ndarray) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'{type(self).__name__} expects NHWC RGB images, got shape '
                       f'{tuple(x.shape)}.')

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Normalised NHWC images to float32 logits."""
    self.check_input(x)
    x = x.astype(self.dtype)
    x = self._conv(x, 0, *_CONV1)
    x = max_pool_ceil(self._norm(x))
    x = self._conv(x, 1, *_CONV2)
    x = max_pool_ceil(self._norm(x))
    for index in (2, 3, 4):
      x = self._conv(x, index, 3, 1, 1)
    x = self.pool5(x)
    for name in ('fc6', 'fc7'):
      x = nn.relu(self._dense(x, name, self.fc_dim))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return self._dense(x, 'fc8', self.num_classes).astype(jnp.float32)


class SPPNet(_ZF5):
  """ZF-5 with spatial pyramid pooling after conv5: any input size works."""
  spp_levels: Sequence[int] = (6, 3, 2, 1)

  def check_input(self, x):
    super().check_input(x)
    smallest = min_input_size()
    if min(x.shape[1:3]) < smallest:
      raise ValueError(
          f'SPPNet needs images of at least {smallest}x{smallest} pixels, got '
          f'{x.shape[1]}x{x.shape[2]}: resize the images up to that size.')

  def pool5(self, x):
    return spatial_pyramid_pool(x, tuple(self.spp_levels))


class ZFNet(_ZF5):
  """The ZFNet baseline: pool5 is a fixed 3x3/2 max pool, so fc6 fixes the input
  at `image_size` (224 gives the paper's 6x6x256 = 9216 features)."""
  image_size: int = 224

  def check_input(self, x):
    super().check_input(x)
    if tuple(x.shape[1:3]) != (self.image_size, self.image_size):
      raise ValueError(
          f'ZFNet takes {self.image_size}x{self.image_size} images only, got '
          f'{x.shape[1]}x{x.shape[2]}: use SPPNet (--config.model=sppnet) for other '
          'sizes.')

  def pool5(self, x):
    x = max_pool_ceil(x)
    return x.reshape(x.shape[0], -1)


def create_model(config) -> nn.Module:
  """The model a config asks for (config.model: 'sppnet' or 'zfnet')."""
  common = dict(
      num_classes=config.num_classes, dropout_rate=config.dropout_rate,
      lrn=config.lrn, initializer=config.initializer, width_multiplier=config.width_multiplier,
      fc_dim=config.fc_dim, dtype=jnp.dtype(config.dtype))
  if config.model == 'sppnet':
    return SPPNet(spp_levels=tuple(config.spp_levels), **common)
  if config.model == 'zfnet':
    sizes = set(config.train_sizes) | {config.eval_size}
    if len(sizes) != 1:
      raise ValueError(
          f'ZFNet trains and evaluates at one size, got train_sizes='
          f'{tuple(config.train_sizes)} and eval_size={config.eval_size}: use '
          '--config.model=sppnet for several sizes.')
    return ZFNet(image_size=sizes.pop(), **common)
  raise ValueError(f"unknown model {config.model!r}: use 'sppnet' or 'zfnet'.")


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
