"""The geometry of strided windows shared by convolution and pooling: output
sizes (Caffe's floor rule for convolutions, ceil rule for pooling) and the
strided slices whose j-th elements are the j-th window's."""

import jax
import jax.numpy as jnp


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
  """Output side of a convolution (floor mode, as Caffe's)."""
  return (size + 2 * pad - kernel) // stride + 1


def ceil_pool_out_size(size: int, window: int, stride: int) -> int:
  """Caffe's ceil-mode output size: ceil((a - k) / s) + 1."""
  return -(-(size - window) // stride) + 1


def window_slices(x, axis: int, window: int, stride: int,
                  count: int) -> list[jnp.ndarray]:
  """The `window` strided slices of x along `axis` whose j-th elements are
  the j-th window's (`count` windows, `stride` apart, all inside x)."""
  return [jax.lax.slice_in_dim(x, offset, offset + (count - 1) * stride + 1, stride,
                               axis=axis) for offset in range(window)]
