"""Bilinear resizing in jax.numpy, for the detector's whole-image scales: the
one resize of the live detector (`conv5.MultiScaleConv5`) and of its
exported graph (`inference/export.py`), so the two feed conv5 the same
pixels.

The formula is TensorFlow's `tf.image.resize(..., 'bilinear',
antialias=False)` (`core.data.image_ops.resize_bilinear`, half-pixel
centres): output pixel i samples x = (i + 0.5) * in / out - 0.5, between
input pixels max(floor(x), 0) and min(ceil(x), in - 1) with weight
x - floor(x), interpolated along x, then along y, in float32.

The image comes padded to a fixed (H, W) with its true (height, width)
traced, so one compilation serves every image of a padded shape and output
shape; pixels past the true size are never read. in / out is taken from a
host-computed table (exact IEEE division; XLA would turn a division by the
constant `out` into a multiplication by its reciprocal).

Contract against TensorFlow: XLA fuses the multiply-adds (FMA), TensorFlow's
kernel does not, so float results differ by rounding (measured: at most
0.002 of a grey level) and the uint8 images (`resize_to_uint8`) differ by
one level in about 1 pixel value in 100,000 (29 of 3.5 million on random
images); on a CPU the result is bitwise TensorFlow's formula with fused
multiply-adds.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _axis(out_size: int, in_size, in_max: int):
  """(lower, upper, weight) of each output position along one axis of an
  input `in_size` (traced, 1..in_max) long."""
  ratio = np.arange(in_max + 1, dtype=np.float32) / np.float32(out_size)
  scale = jnp.asarray(ratio)[in_size]
  x = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * scale - 0.5
  floor = jnp.floor(x)
  lower = jnp.maximum(floor.astype(jnp.int32), 0)
  upper = jnp.minimum(jnp.ceil(x).astype(jnp.int32), in_size - 1)
  return lower, upper, x - floor


def resize_bilinear(image, height, width, shape):
  """(H, W, C) image (any dtype; rows >= height and columns >= width are
  padding, never read), its true height and width (ints or traced int32,
  1 <= height <= H, 1 <= width <= W) -> float32 (shape[0], shape[1], C),
  TensorFlow's bilinear resize of image[:height, :width]."""
  out_height, out_width = (int(s) for s in shape)
  rows_lo, rows_hi, wy = _axis(out_height, jnp.asarray(height, jnp.int32),
                               image.shape[0])
  cols_lo, cols_hi, wx = _axis(out_width, jnp.asarray(width, jnp.int32),
                               image.shape[1])
  image = jnp.asarray(image).astype(jnp.float32)
  top, bottom = image[rows_lo], image[rows_hi]
  wx, wy = wx[None, :, None], wy[:, None, None]
  top_left, top_right = top[:, cols_lo], top[:, cols_hi]
  bottom_left, bottom_right = bottom[:, cols_lo], bottom[:, cols_hi]
  upper = top_left + (top_right - top_left) * wx
  lower = bottom_left + (bottom_right - bottom_left) * wx
  return upper + (lower - upper) * wy


def resize_to_uint8(image, height, width, shape):
  """`resize_bilinear` of a uint8 image rounded (half to even) to uint8, as
  `image_ops.round_to_uint8` rounds TensorFlow's."""
  return jnp.round(resize_bilinear(image, height, width, shape)).astype(
      jnp.uint8)


# One compilation per (padded image shape, output shape).
resize_to_uint8_jitted = jax.jit(resize_to_uint8, static_argnums=3)


def padded_side(side: int, step: int = 64) -> int:
  """The padded length of an image side for `resize_to_uint8_jitted` on the
  host: the next multiple of `step` (few compilations over a data set)."""
  return -(-int(side) // step) * step
