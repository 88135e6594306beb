"""The layers of ZF-5 that flax.linen does not have, or not fast enough on a CPU.

Caffe's ceil-mode max pooling, Caffe's local response normalisation (within- and
across-channel, with a hand-written gradient), and `Conv`: `nn.Conv`'s
parameters and result, computed by one of several convolution implementations
(`conv2d`) chosen for the backend. Each is checked against an independent
formula or `lax.conv_general_dilated` in tests/core/.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sppnet_jax import runtime
from sppnet_jax.core.windows import ceil_pool_out_size, conv_out_size, window_slices
from sppnet_jax.core.winograd import winograd_applies, winograd_conv, winograd_pays


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _window_max(x: jnp.ndarray, axis: int, window: int, stride: int,
                count: int) -> jnp.ndarray:
  """The max of each of `count` windows (`window` long, `stride` apart, all
  inside x) along `axis`: the elementwise max of `window` strided slices."""
  parts = window_slices(x, axis, window, stride, count)
  pooled = parts[0]
  for part in parts[1:]:
    pooled = jnp.maximum(pooled, part)
  return pooled


def _window_max_fwd(x, axis, window, stride, count):
  return _window_max(x, axis, window, stride, count), x


def _window_max_bwd(axis, window, stride, count, x, g):
  """The gradient of the max chain max(max(p0, p1), p2)... of the window's
  slices p_k as autodiff gives it, to the last bit: a max passes its whole
  gradient to the larger operand and half to each when they are equal (JAX's
  rule for lax.max), so a window with tied maxima shares its gradient by
  halves. The window at offset k sends `routed[k]` to positions
  k + stride * j; these are gathered by phase (position mod stride) with
  shifts instead of being scattered, so XLA computes the whole gradient in
  one elementwise loop."""
  parts = window_slices(x, axis, window, stride, count)
  prefix = [parts[0]]  # prefix[k]: the max of parts[0..k], as the forward chains it.
  for part in parts[1:]:
    prefix.append(jnp.maximum(prefix[-1], part))
  share = lambda a, b, z: jnp.where(a == z, jnp.where(b == z, 0.5, 1.0), 0.0).astype(g.dtype)
  routed = [None] * window
  flowing = g  # The gradient reaching prefix[k].
  for k in range(window - 1, 0, -1):
    routed[k] = flowing * share(parts[k], prefix[k - 1], prefix[k])
    flowing = flowing * share(prefix[k - 1], parts[k], prefix[k])
  routed[0] = flowing
  length = x.shape[axis]
  per_phase = -(-length // stride)  # Positions stride * m + phase, m < per_phase.
  phases = []
  for phase in range(stride):
    total = jnp.zeros_like(jax.lax.slice_in_dim(x, 0, per_phase, axis=axis))
    for offset in range(phase, window, stride):
      shift = (offset - phase) // stride  # routed[offset][j] lands on m = j + shift.
      widths = [(0, 0)] * x.ndim
      widths[axis] = (shift, per_phase - count - shift)
      total = total + jnp.pad(routed[offset], widths)
    phases.append(total)
  grad = jnp.stack(phases, axis=axis + 1)
  grad = grad.reshape(x.shape[:axis] + (per_phase * stride,) + x.shape[axis + 1:])
  return (jax.lax.slice_in_dim(grad, 0, length, axis=axis),)


_window_max.defvjp(_window_max_fwd, _window_max_bwd)


def max_pool_ceil(x: jnp.ndarray, window: int = 3, stride: int = 2) -> jnp.ndarray:
  """Caffe ceil-mode max pooling: the last window may run past the edge and then
  sees only real pixels (the missing bottom/right part is padded with -inf).

  Computed separably, as the max of `window` strided row slices and then of
  `window` strided column slices: the same values as a reduce_window max. The
  gradient (`_window_max_bwd`) is autodiff's of those maxima to the last bit
  (an exact tie inside a window shares it by halves), in one elementwise pass
  per axis where autodiff of the slices writes three padded copies.
  """
  sizes = x.shape[1:3]
  outs = [ceil_pool_out_size(size, window, stride) for size in sizes]
  pads = [max((out - 1) * stride + window - size, 0) for out, size in zip(outs, sizes)]
  x = jnp.pad(x, ((0, 0), (0, pads[0]), (0, pads[1]), (0, 0)),
              constant_values=-jnp.inf)
  for axis, out in ((1, outs[0]), (2, outs[1])):
    x = _window_max(x, axis, window, stride, out)
  return x


def max_pool_floor(x: jnp.ndarray, window: int, stride: int) -> jnp.ndarray:
  """Floor-mode max pooling (cuda-convnet's and MatConvNet's unpadded rule):
  floor((a - k) / s) + 1 windows per axis, all inside the map; the rows and
  columns no window reaches are cropped, and the crop is then pooled by
  `max_pool_ceil`, whose windows it fits exactly."""
  keep = [((size - window) // stride) * stride + window for size in x.shape[1:3]]
  return max_pool_ceil(x[:, :keep[0], :keep[1]], window, stride)


CONV_IMPLS = ('auto', 'xla', 'im2col', 'mixed', 'winograd')


def _xla_conv(x, kernel, stride: int, padding: int):
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _patches(x, kh: int, kw: int, stride: int, padding: int):
  """The im2col matrix: (N*Ho*Wo, kh*kw*Cin), columns in HWIO-kernel order."""
  n, h, w, cin = x.shape
  ho, wo = conv_out_size(h, kh, stride, padding), conv_out_size(w, kw, stride, padding)
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
  ho, wo = conv_out_size(h, kh, stride, padding), conv_out_size(w, kw, stride, padding)
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
  than YNNPACK's); the input gradient by XLA. 'winograd' (kernels spanning 3
  strides only: 3x3 at stride 1, 5x5 or 6x6 at stride 2, ...) is Winograd's
  F(2x2, 3x3) over the space-to-depth input, 2.25x fewer multiplies in every
  pass at stride 1 and 2.04x fewer for 5x5 at stride 2. 'auto' (the default)
  is 'xla' on a GPU or TPU (their libraries choose their own algorithms); on a
  CPU, 'winograd' for float32 convolutions spanning 3 strides with many
  channels and pixels (conv3 and up in every network and ZF-5's conv2, at full
  width; see winograd.WINOGRAD_MIN_CHANNEL_PRODUCT), else 'xla' where the CPU's
  convolutions run on Eigen (runtime.CPU_CONV_XLA_FLAG in XLA_FLAGS) and
  'mixed' where they run on YNNPACK. All compute the same sums up to float
  rounding (tests/core/test_conv_impl.py checks values and gradients against
  lax.conv_general_dilated).
  """
  if impl == 'xla':
    return _xla_conv(x, kernel, stride, padding)
  if impl == 'im2col':
    return _im2col_conv(x, kernel, stride, padding)
  if impl == 'winograd':
    if not winograd_applies(kernel, stride):
      raise ValueError(f"conv_impl 'winograd' computes kernels that span 3 strides "
                       f'only (3x3 at stride 1, 5x5 or 6x6 at stride 2, ...), got a '
                       f'{kernel.shape[0]}x{kernel.shape[1]} kernel at stride {stride}: '
                       f"use 'auto', which takes it where it applies.")
    return winograd_conv(x, kernel, stride, padding)
  if impl == 'auto':
    if jax.default_backend() != 'cpu':
      return _xla_conv(x, kernel, stride, padding)
    if winograd_pays(x, kernel, stride, padding):
      return winograd_conv(x, kernel, stride, padding)
    if runtime.cpu_convolutions_use_eigen():
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
