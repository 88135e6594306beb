"""Winograd's F(2x2, 3x3) convolution for kernels that span 3 strides (3x3 at
stride 1, 5x5 or 6x6 at stride 2, ...), and where `layers.conv2d('auto')`
takes it on a CPU. Checked against lax.conv_general_dilated and a float64
direct convolution in tests/core/test_conv_impl.py."""

import jax
import jax.numpy as jnp

from sppnet_jax.core.windows import conv_out_size, window_slices


# Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms
# for Convolutional Neural Networks", 2016): a 2x2 output tile of a 3x3
# convolution is A^T [(G g G^T) * (B^T d B)] A for the 4x4 input tile d (stride
# 2, overlapping by 2) and the 3x3 kernel g, with these exact matrices (entries
# 0, +-1, +-1/2). Summed over input channels, the 16 products of a tile become
# 16 matrix products (tiles x Cin) @ (Cin x Cout): 16 multiplies per 4 outputs
# instead of 36, 2.25x fewer. The transforms are sums and differences of
# shifted slices, written out below for each row of B^T, G and A^T; G is
# ((1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1)).


def _winograd_input_rows(x: jnp.ndarray, axis: int, tiles: int) -> list[jnp.ndarray]:
  """B^T d along `axis` for every tile: the four rows (d0 - d2, d1 + d2,
  d2 - d1, d1 - d3) of the 4-long windows at stride 2 (x is 2 * tiles + 2
  long there), each `tiles` long."""
  rows = window_slices(x, axis, 4, 2, tiles)
  return [rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3]]


def _winograd_output_rows(m0, m1, m2, m3) -> list[jnp.ndarray]:
  """A^T m: the two outputs (m0 + m1 + m2, m1 - m2 - m3) of a 4-long tile."""
  return [m0 + m1 + m2, m1 - m2 - m3]


def _winograd_kernel_rows(kernel: jnp.ndarray, axis: int) -> list[jnp.ndarray]:
  """G g along `axis` (3 long there): the rows g0, (g0 + g1 + g2) / 2,
  (g0 - g1 + g2) / 2 and g2."""
  g0, g1, g2 = (jax.lax.index_in_dim(kernel, i, axis, keepdims=False) for i in range(3))
  return [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]


def _space_to_depth(x: jnp.ndarray, block: int) -> jnp.ndarray:
  """(N, block * H, block * W, C) -> (N, H, W, block * block * C), channels
  ordered (row phase, column phase, C): pixel (i, j) of the result holds the
  block x block square at (block * i, block * j)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // block, w // block, block * block * c)


def winograd_conv(x, kernel, stride: int, padding: int):
  """A convolution whose kernel spans 3 strides (3x3 at stride 1; 5x5 or 6x6
  at stride 2; ...) by F(2x2, 3x3) (see above).

  Along each axis, phase p of the input (positions stride * m + p) meets the
  kernel taps p, p + stride and p + 2 * stride (zero past the kernel), so the
  convolution is a 3x3 stride-1 convolution of the space-to-depth input
  (stride * stride * Cin channels) with the correspondingly rearranged kernel.
  That one is cut into 2x2 output tiles (the input zero-padded up to whole
  tiles, or cropped where no tile reaches); the 16 transformed input planes
  (tiles, channels) are multiplied by the 16 transformed kernels (channels,
  Cout), and the products are transformed back and interleaved. A phase whose
  third tap lies past the kernel has a zero last row in G g, so its channels
  are left out of the products of that row (or column). Differentiated by JAX:
  the gradients are the transposed transforms and 32 more products of the same
  sizes."""
  n, h, w, cin = x.shape
  size, cout = kernel.shape[0], kernel.shape[-1]
  out_h = conv_out_size(h, size, stride, padding)
  out_w = conv_out_size(w, size, stride, padding)
  tiles_h, tiles_w = -(-out_h // 2), -(-out_w // 2)
  span_h, span_w = stride * (2 * tiles_h + 2), stride * (2 * tiles_w + 2)
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), (
      (0, 0, 0), (padding, span_h - h - padding, 0),
      (padding, span_w - w - padding, 0), (0, 0, 0)))
  x = _space_to_depth(x, stride)
  taps = 3 * stride
  kernel = jnp.pad(kernel, ((0, taps - size), (0, taps - size), (0, 0), (0, 0)))
  kernel = kernel.reshape(3, stride, 3, stride, cin, cout).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(3, 3, stride * stride * cin, cout)
  full = size - 2 * stride  # Phases 0..full-1 have all three taps.
  planes = [_winograd_input_rows(row, 2, tiles_w)
            for row in _winograd_input_rows(x, 1, tiles_h)]
  kernels = [_winograd_kernel_rows(row, 0)
             for row in _winograd_kernel_rows(kernel, 0)]
  products = []
  for a in range(4):
    for b in range(4):
      plane = planes[a][b].reshape(-1, stride, stride, cin)
      kern = kernels[a][b].reshape(stride, stride, cin, cout)
      if a == 3:
        plane, kern = plane[:, :full], kern[:full]
      if b == 3:
        plane, kern = plane[:, :, :full], kern[:, :full]
      channels = plane.shape[1] * plane.shape[2] * cin
      products.append(jnp.dot(plane.reshape(-1, channels), kern.reshape(
          channels, cout)).reshape(n, tiles_h, tiles_w, cout))
  # products[4 * a + b]: row a, column b of the tiles' 4x4 products.
  by_column = [_winograd_output_rows(*products[4 * a:4 * a + 4]) for a in range(4)]
  by_row = [_winograd_output_rows(*[by_column[a][col] for a in range(4)])
            for col in range(2)]  # by_row[col][row]: (n, tiles_h, tiles_w, cout)
  y = jnp.stack([jnp.stack([by_row[col][row] for col in range(2)], axis=3)
                 for row in range(2)], axis=2)  # (n, tiles_h, 2, tiles_w, 2, cout)
  return y.reshape(n, 2 * tiles_h, 2 * tiles_w, cout)[:, :out_h, :out_w]


def winograd_applies(kernel, stride: int) -> bool:
  """Whether `winograd_conv` computes this kernel: square, spanning 3 strides
  (2 * stride < size <= 3 * stride)."""
  size = kernel.shape[0]
  return kernel.shape[1] == size and -(-size // stride) == 3


# Where 'auto' takes Winograd on a CPU: at least this many input x output
# channels (input channels of the space-to-depth input: stride^2 * Cin) and
# output pixels over the batch. Below, the 16 products are small
# matrix products and the transforms' extra passes over memory cost about what
# the fewer multiplies save (and compiling them costs ~1 s more per layer).
WINOGRAD_MIN_CHANNEL_PRODUCT = 256 * 256
WINOGRAD_MIN_OUTPUT_PIXELS = 2048


def winograd_pays(x, kernel, stride: int, padding: int) -> bool:
  n, h, w, cin = x.shape
  size = kernel.shape[0]
  pixels = n * conv_out_size(h, size, stride, padding) * conv_out_size(
      w, size, stride, padding)
  return (winograd_applies(kernel, stride) and x.dtype == jnp.float32
          and stride * stride * cin * kernel.shape[-1] >= WINOGRAD_MIN_CHANNEL_PRODUCT
          and pixels >= WINOGRAD_MIN_OUTPUT_PIXELS)
