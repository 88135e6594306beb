"""Spatial pyramid pooling with the exact bin rule, for every input size.

For an a-long axis split into n bins, bin i covers the half-open range
[floor(i*a/n), ceil((i+1)*a/n)) (the paper's appendix, and PyTorch's adaptive max
pooling). Every bin is non-empty for every a >= 1 and n >= 1, including n > a,
unlike the paper's quick "window=ceil(a/n), stride=floor(a/n)" recipe, which many
ports copy and which is wrong for e.g. a 10x10 map at n=6.

The bins are static slices chosen at trace time (shapes are static under jit).
A rectangle's max is the max over its rows of the max over its columns, so each
level reduces one axis at a time: 2n slices per level instead of n*n.
"""

from typing import Sequence

import jax.numpy as jnp


def bin_edges(size: int, num_bins: int) -> list[tuple[int, int]]:
  """The [start, end) ranges of the exact bin rule along one axis."""
  if size < 1 or num_bins < 1:
    raise ValueError(
        f'spatial pyramid pooling needs a map side >= 1 and a level >= 1, got '
        f'side {size} and level {num_bins}.')
  return [(i * size // num_bins, -((-(i + 1) * size) // num_bins))
          for i in range(num_bins)]


def _pool_axis(x: jnp.ndarray, axis: int, num_bins: int) -> jnp.ndarray:
  """Max over each bin of one axis; that axis becomes num_bins long."""
  edges = bin_edges(x.shape[axis], num_bins)
  if num_bins == x.shape[axis]:
    return x  # Every bin is exactly one element.
  pooled = [
      jnp.max(x[(slice(None),) * axis + (slice(start, end),)],
              axis=axis, keepdims=True) for start, end in edges
  ]
  return jnp.concatenate(pooled, axis=axis)


def spatial_pyramid_pool(x: jnp.ndarray,
                         levels: Sequence[int] = (6, 3, 2, 1)) -> jnp.ndarray:
  """Pools an NHWC map into a fixed-length (N, C * sum(n*n)) vector.

  Each level n max-pools the map into an n x n grid with the exact bin rule; the
  grids are flattened in (row, column, channel) order and concatenated in the
  order of `levels`, so the length depends on C and the levels only, never on H, W.
  """
  if x.ndim != 4:
    raise ValueError(f'spatial_pyramid_pool expects NHWC input, got shape {x.shape}.')
  if not levels:
    raise ValueError('spatial_pyramid_pool needs at least one pyramid level.')
  batch = x.shape[0]
  outputs = []
  for n in levels:
    pooled = _pool_axis(_pool_axis(x, 1, n), 2, n)
    outputs.append(pooled.reshape(batch, -1))
  return jnp.concatenate(outputs, axis=1)


def spp_output_dim(channels: int, levels: Sequence[int]) -> int:
  """Length of the pooled vector for `channels` feature maps."""
  return channels * sum(n * n for n in levels)
