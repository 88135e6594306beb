"""The paper's networks (ZF-5, Convnet*-5, Overfeat-5, Overfeat-7) with a
fixed-pool baseline head (NoSPPNet; ZFNet is ZF-5's) or an SPP head (SPPNet).

The trunk is read from the network's layer table (`core.architectures`, chosen
by the `architecture` field, ZF-5 by default): convolutions with ReLU (LRN where
the table says), Caffe ceil-mode max pooling (floor mode where the table says),
then either the architecture's fixed max pool to 6x6 at 224 (NoSPPNet, one
input size only) or spatial pyramid pooling (SPPNet, any size from
`architectures.min_input_size` up), and fc6/fc7 (ReLU, dropout) and fc8 logits.

The network exposes its stages, so that a caller can compute conv5 once and pool
many windows of it (the paper's detection and multi-view testing):

  conv5 = model.apply(variables, images, method='features')
  vector = model.apply(variables, conv5, method='pool5')
  logits = model.apply(variables, vector, train=False, method='head')

`model.apply(variables, images, train=...)` is the three in a row. The parameter
names are flat (conv1..conv5 or conv7, fc6..fc8) whether the stages run one at
a time or in a row, so one checkpoint serves both.
"""

from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.core import architectures
from sppnet_jax.core.layers import Conv, LocalResponseNorm, max_pool_ceil, max_pool_floor
from sppnet_jax.core.spp import spatial_pyramid_pool, spp_output_dim
from sppnet_jax.core.windows import ceil_pool_out_size

# ImageNet channel statistics on the 0..255 scale; images travel as uint8 and are
# normalised on the device (inside the jitted step and the exported function).
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


# The authors' bias constants per layer (Caffe definition), used by init='caffe';
# the other networks' deeper layers follow ZF-5's conv4/conv5.
_CAFFE_BIAS = {'conv1': 0., 'conv2': 1., 'conv3': 0., 'conv4': 1., 'conv5': 1.,
               'conv6': 1., 'conv7': 1., 'fc6': 1., 'fc7': 1., 'fc8': 1.}


def normalize_images(images: jnp.ndarray, dtype: Any = jnp.float32) -> jnp.ndarray:
  """uint8 (or float 0..255) RGB images to mean/std-normalised `dtype`."""
  images = images.astype(jnp.float32)
  images = (images - jnp.asarray(MEAN_RGB)) / jnp.asarray(STDDEV_RGB)
  return images.astype(dtype)


def channels(layer: architectures.Layer, width_multiplier: float) -> int:
  """A convolution's output channels at a width multiplier (at least 1)."""
  return max(1, int(round(layer.channels * width_multiplier)))


class Network(nn.Module):
  """One of the paper's trunks (`architecture`, see `core.architectures`) and
  the fc6-fc8 head; subclasses choose pool5."""
  num_classes: int = 1000
  dropout_rate: float = 0.5
  lrn: str = 'within_channel'
  initializer: str = 'caffe'
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  dtype: Any = jnp.float32
  # How the convolutions are computed (see `layers.conv2d`); parameters are the same.
  conv_impl: str = 'auto'
  architecture: str = 'zf5'  # one of architectures.ARCHITECTURES

  # Whether any input side from min_input_size() works (else: `input_size` only).
  any_input_size: ClassVar[bool] = True

  @property
  def input_size(self) -> int | None:
    """The one input side the network takes, or None for any side."""
    return None

  @property
  def table(self) -> architectures.Architecture:
    """The layer table of `architecture` (ConfigError when unknown)."""
    return architectures.get(self.architecture)

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
    # Attribute names are the parameter names (conv1..convN, fc6..fc8), as the
    # single compact __call__ of earlier versions named them.
    for layer in self.table.conv_layers:
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
    smallest = architectures.min_input_size(self.architecture)
    if min(x.shape[1:3]) < smallest:
      raise ValueError(
          f'{type(self).__name__} ({self.table.title}) needs images of at least '
          f'{smallest}x{smallest} pixels, got {x.shape[1]}x{x.shape[2]}: resize '
          'the images up to that size.')

  def features(self, x: jnp.ndarray) -> jnp.ndarray:
    """Normalised NHWC images to the last convolution's maps (after ReLU;
    "conv5" whatever the depth), in `dtype`."""
    self.check_input(x)
    x = x.astype(self.dtype)
    for layer in self.table.layers:
      if layer.kind == 'conv':
        x = nn.relu(getattr(self, layer.name)(x))
        if layer.lrn and self.lrn != 'none':
          x = self.norm(x)
      elif layer.ceil:
        x = max_pool_ceil(x, layer.kernel, layer.stride)
      else:
        x = max_pool_floor(x, layer.kernel, layer.stride)
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

  def last_channels(self) -> int:
    """The channels of the conv5 maps at this width."""
    return channels(self.table.conv_layers[-1], self.width_multiplier)


class SPPNet(Network):
  """A trunk with spatial pyramid pooling after its last convolution: any
  input size works."""
  spp_levels: Sequence[int] = (6, 3, 2, 1)

  def pool5(self, x):
    return spatial_pyramid_pool(x, tuple(self.spp_levels))

  def pool5_dim(self) -> int:
    return spp_output_dim(self.last_channels(), tuple(self.spp_levels))


class NoSPPNet(Network):
  """The no-SPP baseline: pool5 is the architecture's fixed max pool
  (`baseline_pool`: 3x3/2 on ZF-5's and Convnet*-5's 13x13, 3x3/3 on
  Overfeat's 18x18), so fc6 fixes the input at `image_size` (224 gives the
  paper's 6x6 maps)."""
  image_size: int = 224
  any_input_size: ClassVar[bool] = False

  @property
  def input_size(self) -> int:
    return self.image_size

  def check_input(self, x):
    super().check_input(x)
    if tuple(x.shape[1:3]) != (self.image_size, self.image_size):
      raise ValueError(
          f'{type(self).__name__} takes {self.image_size}x{self.image_size} images '
          f'only, got {x.shape[1]}x{x.shape[2]}: use SPPNet '
          '(--config.model=sppnet) for other sizes.')

  def pool5(self, x):
    x = max_pool_ceil(x, *self.table.baseline_pool)
    return x.reshape(x.shape[0], -1)

  def pool5_dim(self) -> int:
    side = ceil_pool_out_size(
        architectures.conv5_size(self.image_size, self.architecture),
        *self.table.baseline_pool)
    return side * side * self.last_channels()


class ZFNet(NoSPPNet):
  """The paper's ZFNet: ZF-5's no-SPP baseline (3x3/2 pool5, 6x6x256 = 9216
  features at 224); NoSPPNet with its default architecture."""


def forward_macs(model: Network, height: int, width: int | None = None) -> int:
  """Multiply-accumulates of one forward pass of one image: the convolutions
  and fc6-fc8 (pooling, LRN and ReLU are not counted)."""
  width = height if width is None else width
  macs, sides, cin = 0, (height, width), 3
  for layer in model.table.layers:
    sides = tuple(architectures.layer_output_size(layer, side) for side in sides)
    if layer.kind == 'conv':
      cout = channels(layer, model.width_multiplier)
      macs += sides[0] * sides[1] * layer.kernel * layer.kernel * cin * cout
      cin = cout
  fc = model.fc_dim
  return macs + model.pool5_dim() * fc + fc * fc + fc * model.num_classes


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
