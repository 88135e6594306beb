"""ZF-5 (Zeiler & Fergus' fast model) with a pool5 baseline head or an SPP head.

The geometry follows the authors' released ZF-5 definition (see SPPNET.md):
conv1 7x7/2 pad 1, within-channel LRN, Caffe ceil-mode 3x3/2 max pooling,
conv2 5x5/2, three 3x3 convolutions, then either a fixed 3x3/2 max pool (ZFNet,
224x224 inputs only) or spatial pyramid pooling (SPPNet, any size from
`min_input_size()` up), and fc6/fc7 (ReLU, dropout) and fc8 logits.
"""

import functools
import os
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
  sees only real pixels (the missing bottom/right part is padded with -inf).

  Computed separably, as the max of `window` strided row slices and then of
  `window` strided column slices: the same values as a reduce_window max, and on
  XLA's CPU backend much faster to differentiate than its select-and-scatter
  (the gradient is the same except that an exact tie inside a window shares it).
  """
  sizes = x.shape[1:3]
  outs = [_ceil_pool_out(size, window, stride) for size in sizes]
  pads = [max((out - 1) * stride + window - size, 0) for out, size in zip(outs, sizes)]
  x = jnp.pad(x, ((0, 0), (0, pads[0]), (0, pads[1]), (0, 0)),
              constant_values=-jnp.inf)
  for axis, out in ((1, outs[0]), (2, outs[1])):
    pooled = None
    for offset in range(window):
      part = jax.lax.slice_in_dim(x, offset, offset + (out - 1) * stride + 1, stride,
                                  axis=axis)
      pooled = part if pooled is None else jnp.maximum(pooled, part)
    x = pooled
  return x


CONV_IMPLS = ('auto', 'xla', 'im2col', 'mixed')
# The XLA flag that sends convolutions on the CPU to Eigen's multi-threaded
# convolutions instead of YNNPACK (jaxlib 0.10's default for convolutions and
# dots), keeping YNNPACK for the matrix products: on a 2-core AMD EPYC it makes
# every ZF-5 convolution pass, forward and both gradients, 1.2-2x faster (see
# benchmarks/train_step.py). It must be in XLA_FLAGS before JAX starts.
CPU_CONV_XLA_FLAG = ('--xla_cpu_experimental_ynn_fusion_type='
                     'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT')


def prefer_fast_cpu_convolutions() -> None:
  """Adds CPU_CONV_XLA_FLAG to XLA_FLAGS unless XLA_FLAGS already chooses; call
  it before JAX starts (it does nothing on GPU/TPU). main.py and the benchmarks
  call it, so every entry point runs the same convolutions."""
  flags_now = os.environ.get('XLA_FLAGS', '')
  if CPU_CONV_XLA_FLAG.split('=')[0] not in flags_now:
    os.environ['XLA_FLAGS'] = f'{flags_now} {CPU_CONV_XLA_FLAG}'.strip()


def _cpu_convs_use_eigen() -> bool:
  """Whether XLA_FLAGS keeps convolutions off YNNPACK (see CPU_CONV_XLA_FLAG)."""
  values = [flag.split('=', 1)[1] for flag in os.environ.get('XLA_FLAGS', '').split()
            if flag.startswith('--xla_cpu_experimental_ynn_fusion_type=')]
  return bool(values) and 'CONVOLUTION' not in values[-1].upper()


def _xla_conv(x, kernel, stride: int, padding: int):
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _patches(x, kh: int, kw: int, stride: int, padding: int):
  """The im2col matrix: (N*Ho*Wo, kh*kw*Cin), columns in HWIO-kernel order."""
  n, h, w, cin = x.shape
  ho, wo = _conv_out(h, kh, stride, padding), _conv_out(w, kw, stride, padding)
  if padding:
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  shifts = [
      jax.lax.slice(x, (0, i, j, 0),
                    (n, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, cin),
                    (1, stride, stride, 1))
      for i in range(kh) for j in range(kw)
  ]
  patches = shifts[0] if len(shifts) == 1 else jnp.concatenate(shifts, axis=-1)
  return patches.reshape(n * ho * wo, kh * kw * cin)


def _im2col_conv(x, kernel, stride: int, padding: int, patches=None):
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  ho, wo = _conv_out(h, kh, stride, padding), _conv_out(w, kw, stride, padding)
  if patches is None:
    patches = _patches(x, kh, kw, stride, padding)
  out = jnp.dot(patches, kernel.reshape(kh * kw * cin, cout))
  return out.reshape(n, ho, wo, cout)


def _im2col_forward(x, kernel, stride: int) -> bool:  # For 'mixed'.
  """Where XLA:CPU's own convolution is slower forward than im2col + matmul:
  strided convolutions with more than a few input channels (conv2's 5x5/2). The
  first layer (3 channels: 3-wide patch pieces) and the 3x3/1 layers are faster
  as XLA convolutions."""
  return stride > 1 and x.shape[-1] >= 16


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _mixed_conv(x, kernel, stride, padding):
  if _im2col_forward(x, kernel, stride):
    return _im2col_conv(x, kernel, stride, padding)
  return _xla_conv(x, kernel, stride, padding)


def _mixed_conv_fwd(x, kernel, stride, padding):
  kh, kw = kernel.shape[:2]
  if _im2col_forward(x, kernel, stride):
    patches = _patches(x, kh, kw, stride, padding)
    return _im2col_conv(x, kernel, stride, padding, patches), (x, kernel, patches)
  return _xla_conv(x, kernel, stride, padding), (x, kernel, None)


def _mixed_conv_bwd(stride, padding, residuals, g):
  x, kernel, patches = residuals
  kh, kw, cin, cout = kernel.shape
  if patches is None:
    patches = _patches(x, kh, kw, stride, padding)
  # dW = patches^T @ dY: a plain matrix product, ~2-3x faster than XLA:CPU's
  # weight-gradient convolution. dX: XLA's input-gradient convolution, which is
  # as fast as the col2im alternative (and is dropped by XLA for the first layer,
  # whose input gradient nothing uses).
  g_rows = g.reshape(-1, cout)
  d_kernel = jax.lax.dot_general(patches, g_rows, (((0,), (0,)), ((), ())))
  _, conv_vjp = jax.vjp(lambda v: _xla_conv(v, kernel, stride, padding), x)
  (d_x,) = conv_vjp(g)
  return d_x, d_kernel.reshape(kh, kw, cin, cout).astype(kernel.dtype)


_mixed_conv.defvjp(_mixed_conv_fwd, _mixed_conv_bwd)


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: int,
           impl: str = 'auto') -> jnp.ndarray:
  """NHWC x HWIO convolution with square stride and symmetric zero padding.

  'xla' is lax.conv_general_dilated, differentiated by JAX. 'im2col' gathers the
  kh*kw strided shifts of the input into one (N*Ho*Wo, kh*kw*Cin) patch matrix
  (the column order of the HWIO kernel reshaped to (kh*kw*Cin, Cout)) and
  multiplies. 'mixed' picks per pass what is fastest with jaxlib's default
  YNNPACK convolutions on the CPU, whose matrix multiply is far faster than its
  convolutions: forward by im2col for strided convolutions of many channels
  (conv2), else by XLA; the weight gradient always as patches^T @ dY (2-3x faster
  than YNNPACK's); the input gradient by XLA. 'auto' (the default) is 'xla' on a
  GPU or TPU and on a CPU whose convolutions run on Eigen (CPU_CONV_XLA_FLAG in
  XLA_FLAGS: then every XLA pass is the fastest), else 'mixed'. All compute the
  same sums (tests/test_conv_impl.py checks values and gradients against
  lax.conv_general_dilated).
  """
  if impl == 'xla':
    return _xla_conv(x, kernel, stride, padding)
  if impl == 'im2col':
    return _im2col_conv(x, kernel, stride, padding)
  if impl == 'auto':
    if jax.default_backend() != 'cpu' or _cpu_convs_use_eigen():
      return _xla_conv(x, kernel, stride, padding)
    return _mixed_conv(x, kernel, stride, padding)
  if impl == 'mixed':
    return _mixed_conv(x, kernel, stride, padding)
  raise ValueError(f'unknown convolution implementation {impl!r}: use one of '
                   f'{CONV_IMPLS}.')


class Conv(nn.Module):
  """nn.Conv's parameters ('kernel' HWIO, 'bias') and result for square kernels
  and strides and symmetric padding, computed by `conv2d` with `impl`."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  impl: str = 'auto'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
    kernel = self.param('kernel', self.kernel_init, shape, self.param_dtype)
    bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv2d(x, kernel, self.stride, self.padding, self.impl) + bias


def _window_sum(x: jnp.ndarray, axes: tuple[int, ...], size: int,
                transpose: bool = False) -> jnp.ndarray:
  """Zero-padded sum over a `size`-long window along each of `axes` (same length
  out as in), as a sum of shifted slices: XLA fuses it into one elementwise loop.
  `transpose=True` gives the adjoint (the window mirrored), for even sizes."""
  half = (size - 1) // 2
  pad = (size - 1 - half, half) if transpose else (half, size - 1 - half)
  for axis in axes:
    length = x.shape[axis]
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    padded = jnp.pad(x, widths)
    total = None
    for offset in range(size):
      part = jax.lax.slice_in_dim(padded, offset, offset + length, axis=axis)
      total = part if total is None else total + part
    x = total
  return x


def _neg_pow(t: jnp.ndarray, beta: float) -> jnp.ndarray:
  """t ** -beta, with square roots for the usual betas (0.75: ZF-5 and AlexNet;
  0.5): the same value to float rounding, several times faster than pow on CPU."""
  if beta == 0.75:
    r = jax.lax.rsqrt(t)
    return r * jnp.sqrt(r)
  if beta == 0.5:
    return jax.lax.rsqrt(t)
  return t ** -beta


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _lrn(x, axes, size, scaled_alpha, beta, k):
  """y = x * (k + scaled_alpha * window_sum(x^2)) ** -beta, float32 in and out."""
  return x * _neg_pow(k + scaled_alpha * _window_sum(x * x, axes, size), beta)


def _lrn_fwd(x, axes, size, scaled_alpha, beta, k):
  return _lrn(x, axes, size, scaled_alpha, beta, k), x


def _lrn_bwd(axes, size, scaled_alpha, beta, k, x, g):
  # dy_j/dx_i = [i == j] t_j^-beta - 2 beta scaled_alpha x_i x_j t_j^(-beta-1) for
  # i in j's window; t is recomputed here rather than stored (memory-bound anyway).
  t = k + scaled_alpha * _window_sum(x * x, axes, size)
  scale = _neg_pow(t, beta)
  inner = g * x * scale / t
  return (g * scale - (2 * beta * scaled_alpha) * x * _window_sum(
      inner, axes, size, transpose=True),)


_lrn.defvjp(_lrn_fwd, _lrn_bwd)


class LocalResponseNorm(nn.Module):
  """Caffe's LRN: y = x / (k + alpha * mean(x^2 over the window))^beta.

  'within_channel' (the authors' ZF-5) averages over a size x size spatial window
  with zero padding, always dividing by size^2; 'across_channel' (AlexNet) averages
  over `size` neighbouring channels. The window sums are shifted slices and the
  gradient is written out (one fused pass each way), see `_lrn`.
  """
  mode: str = 'within_channel'
  size: int = 3
  alpha: float = 5e-5
  beta: float = 0.75
  k: float = 1.0

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.mode == 'within_channel':
      axes, count = (1, 2), self.size * self.size
    elif self.mode == 'across_channel':
      axes, count = (3,), self.size
    else:
      raise ValueError(f"unknown LRN mode {self.mode!r}: use 'within_channel', "
                       "'across_channel' or 'none'.")
    y = _lrn(x.astype(jnp.float32), axes, self.size, self.alpha / count,
             float(self.beta), float(self.k))
    return y.astype(x.dtype)


class _ZF5(nn.Module):
  """The shared ZF-5 trunk and fc6-fc8 head; subclasses choose pool5."""
  num_classes: int = 1000
  dropout_rate: float = 0.5
  lrn: str = 'within_channel'
  initializer: str = 'caffe'
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  dtype: Any = jnp.float32
  # How the convolutions are computed (see `conv2d`); parameters are the same.
  conv_impl: str = 'auto'

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
    x = Conv(features, kernel, stride, pad, impl=self.conv_impl, dtype=self.dtype,
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
