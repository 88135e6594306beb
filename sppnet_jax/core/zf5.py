"""ZF-5 (Zeiler & Fergus' fast model) with a pool5 baseline head or an SPP head.

The geometry follows the authors' released ZF-5 definition: conv1 7x7/2 pad 1,
within-channel LRN, Caffe ceil-mode 3x3/2 max pooling, conv2 5x5/2, three 3x3
convolutions, then either a fixed 3x3/2 max pool (ZFNet, one input size only) or
spatial pyramid pooling (SPPNet, any size from `min_input_size()` up), and
fc6/fc7 (ReLU, dropout) and fc8 logits.

The network exposes its stages, so that a caller can compute conv5 once and pool
many windows of it (the paper's detection and multi-view testing):

  conv5 = model.apply(variables, images, method='features')
  vector = model.apply(variables, conv5, method='pool5')
  logits = model.apply(variables, vector, train=False, method='head')

`model.apply(variables, images, train=...)` is the three in a row. The parameter
names are flat (conv1..conv5, fc6..fc8) whether the stages run one at a time
or in a row, so one checkpoint serves both.
"""

import dataclasses
import functools
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.core.layers import (Conv, LocalResponseNorm, ceil_pool_out_size,
                                    conv_out_size, max_pool_ceil)
from sppnet_jax.core.spp import spatial_pyramid_pool, spp_output_dim

# ImageNet channel statistics on the 0..255 scale; images travel as uint8 and are
# normalised on the device (inside the jitted step and the exported function).
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True)
class Layer:
  """One layer of ZF-5 that changes the spatial size (or the channels)."""
  name: str
  kind: str  # 'conv' (floor mode, zero padding) | 'pool' (Caffe ceil mode)
  kernel: int
  stride: int
  padding: int = 0
  channels: int = 0  # output channels of a convolution at width 1.0


# The trunk up to conv5, in order: the single source of ZF-5's geometry (the
# network, the map sizes, FLOP counts and, for detection, the projection of
# image windows onto conv5 cells).
LAYERS = (
    Layer('conv1', 'conv', 7, 2, 1, 96),
    Layer('pool1', 'pool', 3, 2),
    Layer('conv2', 'conv', 5, 2, 0, 256),
    Layer('pool2', 'pool', 3, 2),
    Layer('conv3', 'conv', 3, 1, 1, 384),
    Layer('conv4', 'conv', 3, 1, 1, 384),
    Layer('conv5', 'conv', 3, 1, 1, 256),
)
CONV_LAYERS = tuple(layer for layer in LAYERS if layer.kind == 'conv')
# The authors' bias constants per layer (Caffe definition), used by init='caffe'.
_CAFFE_BIAS = {'conv1': 0., 'conv2': 1., 'conv3': 0., 'conv4': 1., 'conv5': 1.,
               'fc6': 1., 'fc7': 1., 'fc8': 1.}


def normalize_images(images: jnp.ndarray, dtype: Any = jnp.float32) -> jnp.ndarray:
  """uint8 (or float 0..255) RGB images to mean/std-normalised `dtype`."""
  images = images.astype(jnp.float32)
  images = (images - jnp.asarray(MEAN_RGB)) / jnp.asarray(STDDEV_RGB)
  return images.astype(dtype)


def layer_output_size(layer: Layer, size: int) -> int:
  """The side after `layer` for an input side (< 1: no output)."""
  if layer.kind == 'pool':
    return ceil_pool_out_size(size, layer.kernel, layer.stride)
  return conv_out_size(size, layer.kernel, layer.stride, layer.padding)


def layer_sizes(input_size: int) -> dict[str, int]:
  """The side of every layer's output for an input side; 0 from the first layer
  that has no output on."""
  sizes, size = {}, input_size
  for layer in LAYERS:
    size = layer_output_size(layer, size) if size >= 1 else 0
    sizes[layer.name] = max(size, 0)
  return sizes


def receptive_field_centres(layers=LAYERS) -> tuple[float, int]:
  """(c, S): cell j of the last layer's map has its receptive field centred at
  image coordinate c + S * j, in continuous pixel coordinates (pixel i spans
  [i, i + 1), its centre is i + 0.5). S is the product of the strides.

  Each layer moves the centre of its first output by ((k - 1) / 2 - p) input
  steps (ceil-mode pooling pads at the end only, so p = 0 there). For ZF-5:
  0.5 (pixel 0) + 2 (conv1 7/2 pad 1) + 1 * 2 (pool1 3/2) + 2 * 4 (conv2 5/2)
  + 1 * 8 (pool2 3/2) + 0 (conv3-5 3/1 pad 1) = 20.5, and S = 2 * 2 * 2 * 2 = 16:
  cell j sees pixels centred on pixel 20 + 16 j (21 + 16 j counted from 1, the
  authors' `offset0 = 21`)."""
  centre, jump = 0.5, 1
  for layer in layers:
    centre += ((layer.kernel - 1) / 2 - layer.padding) * jump
    jump *= layer.stride
  return centre, jump


def conv5_size(input_size: int) -> int:
  """Side of the conv5 map for an input side (0 when the input is too small)."""
  return layer_sizes(input_size)['conv5']


@functools.cache
def min_input_size() -> int:
  """The smallest input side for which every ZF-5 layer has an output."""
  return next(s for s in range(1, 1024) if conv5_size(s) >= 1)


def channels(layer: Layer, width_multiplier: float) -> int:
  """A convolution's output channels at a width multiplier (at least 1)."""
  return max(1, int(round(layer.channels * width_multiplier)))


class ZF5(nn.Module):
  """The shared ZF-5 trunk and fc6-fc8 head; subclasses choose pool5."""
  num_classes: int = 1000
  dropout_rate: float = 0.5
  lrn: str = 'within_channel'
  initializer: str = 'caffe'
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  dtype: Any = jnp.float32
  # How the convolutions are computed (see `layers.conv2d`); parameters are the same.
  conv_impl: str = 'auto'

  # Whether any input side from min_input_size() works (else: `input_size` only).
  any_input_size: ClassVar[bool] = True

  @property
  def input_size(self) -> int | None:
    """The one input side the network takes, or None for any side."""
    return None

  def _initializers(self, name: str):
    if self.initializer == 'caffe':
      return dict(kernel_init=nn.initializers.normal(0.01),
                  bias_init=nn.initializers.constant(_CAFFE_BIAS[name]))
    if self.initializer == 'he':
      scale = 1.0 if name == 'fc8' else 2.0  # fc8 has no ReLU after it
      return dict(kernel_init=nn.initializers.variance_scaling(scale, 'fan_in',
                                                               'normal'),
                  bias_init=nn.initializers.zeros)
    raise ValueError(f"unknown initializer {self.initializer!r}: use 'caffe' or 'he'.")

  def setup(self):
    # Attribute names are the parameter names (conv1..conv5, fc6..fc8), as the
    # single compact __call__ of earlier versions named them.
    for layer in CONV_LAYERS:
      setattr(self, layer.name, Conv(
          channels(layer, self.width_multiplier), layer.kernel, layer.stride,
          layer.padding, impl=self.conv_impl, dtype=self.dtype,
          **self._initializers(layer.name)))
    for name, features in (('fc6', self.fc_dim), ('fc7', self.fc_dim),
                           ('fc8', self.num_classes)):
      setattr(self, name, nn.Dense(features, dtype=self.dtype,
                                   **self._initializers(name)))
    # Flax's auto-names for two dropout layers: the dropout masks derive from
    # the module names, so these names fix which masks a seed draws (and keep
    # checkpointed runs resuming with the same masks).
    self.Dropout_0 = nn.Dropout(self.dropout_rate)  # pylint: disable=invalid-name
    self.Dropout_1 = nn.Dropout(self.dropout_rate)  # pylint: disable=invalid-name
    if self.lrn != 'none':
      self.norm = LocalResponseNorm(self.lrn)

  def check_input(self, x: jnp.ndarray) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'{type(self).__name__} expects NHWC RGB images, got shape '
                       f'{tuple(x.shape)}.')
    smallest = min_input_size()
    if min(x.shape[1:3]) < smallest:
      raise ValueError(
          f'{type(self).__name__} needs images of at least {smallest}x{smallest} '
          f'pixels, got {x.shape[1]}x{x.shape[2]}: resize the images up to that '
          'size.')

  def features(self, x: jnp.ndarray) -> jnp.ndarray:
    """Normalised NHWC images to the conv5 maps (after ReLU), in `dtype`."""
    self.check_input(x)
    x = x.astype(self.dtype)
    for layer in CONV_LAYERS:
      x = nn.relu(getattr(self, layer.name)(x))
      if layer.name in ('conv1', 'conv2'):
        x = max_pool_ceil(x if self.lrn == 'none' else self.norm(x))
    return x

  def pool5(self, x: jnp.ndarray) -> jnp.ndarray:
    """conv5 maps (N, H, W, C) to fixed-length vectors (N, pool5_dim)."""
    raise NotImplementedError

  def pool5_dim(self) -> int:
    """The length of pool5's vectors (fc6's input)."""
    raise NotImplementedError

  def head(self, v: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """pool5 vectors to float32 logits: fc6, fc7 (ReLU, dropout when training), fc8."""
    v = nn.relu(self.fc6(v))
    v = self.Dropout_0(v, deterministic=not train)
    v = nn.relu(self.fc7(v))
    v = self.Dropout_1(v, deterministic=not train)
    return self.fc8(v).astype(jnp.float32)

  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Normalised NHWC images to float32 logits."""
    return self.head(self.pool5(self.features(x)), train=train)


class SPPNet(ZF5):
  """ZF-5 with spatial pyramid pooling after conv5: any input size works."""
  spp_levels: Sequence[int] = (6, 3, 2, 1)

  def pool5(self, x):
    return spatial_pyramid_pool(x, tuple(self.spp_levels))

  def pool5_dim(self) -> int:
    return spp_output_dim(channels(LAYERS[-1], self.width_multiplier),
                          tuple(self.spp_levels))


class ZFNet(ZF5):
  """The ZFNet baseline: pool5 is a fixed 3x3/2 max pool, so fc6 fixes the input
  at `image_size` (224 gives the paper's 6x6x256 = 9216 features)."""
  image_size: int = 224
  any_input_size: ClassVar[bool] = False

  @property
  def input_size(self) -> int:
    return self.image_size

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

  def pool5_dim(self) -> int:
    side = ceil_pool_out_size(conv5_size(self.image_size), 3, 2)
    return side * side * channels(LAYERS[-1], self.width_multiplier)


def forward_macs(model: ZF5, height: int, width: int | None = None) -> int:
  """Multiply-accumulates of one forward pass of one image: the convolutions
  and fc6-fc8 (pooling, LRN and ReLU are not counted)."""
  width = height if width is None else width
  macs, sides, cin = 0, (height, width), 3
  for layer in LAYERS:
    sides = tuple(layer_output_size(layer, side) for side in sides)
    if layer.kind == 'conv':
      cout = channels(layer, model.width_multiplier)
      macs += sides[0] * sides[1] * layer.kernel * layer.kernel * cin * cout
      cin = cout
  fc = model.fc_dim
  return macs + model.pool5_dim() * fc + fc * fc + fc * model.num_classes


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
