"""Spatial pyramid pooling of many boxes of one shared feature map.

The feature map of a whole image is computed once; each box (a window of the
image projected onto the map, see `core.projection`) is pooled into the same
fixed-length vector that `spatial_pyramid_pool` makes of the box's cells:

  roi_spatial_pyramid_pool(f, boxes)[r]
      == spatial_pyramid_pool(f[None, y0:y1, x0:x1])[0]   (exactly)

Boxes are traced values (one compilation per number of boxes and map shape), so
the bins cannot be static slices. Every bin is a rectangle max, answered exactly
from a two-dimensional sparse table: T[a, b, y, x] = the max of f over rows
[y, y + 2^a) and columns [x, x + 2^b). A bin of h x w cells is the max of the
four (overlapping) entries of sides 2^floor(log2 h) x 2^floor(log2 w) at its
corners, and the max of overlapping ranges is the max of their union. The table
is built once per map, O(log H log W H W C) memory whatever the number of
boxes; each bin then costs four gathers of C values, so R boxes cost
O(R sum(n^2) C) and no (R, n^2, H, W, C) mask is ever made.

Nested pyramids. When every level divides the finest one, as in the paper's
{6, 3, 2, 1}, bin j of level m is exactly the union of bins j k .. j k + k - 1
of level n = m k (both ends of the rule floor(i h / n), ceil((i + 1) h / n)
scale with n), so only the finest level is gathered and the coarser ones are
maxima over its grid; and since a bin of the finest level spans at most
ceil(H / n) + 1 rows, the table stops at that height (and width). For 2,000
boxes on a 42 x 56 x 256 map this is 3x faster than gathering every level from
the full table (benchmarks/region_pooling.py). The gradient reaches
the map through the gathers and the table's maxima (JAX splits it between equal
maxima, so an element that is the max of overlapping parts gets it once).
"""

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from sppnet_jax.core.spp import spp_output_dim


def _floor_log2(size: int) -> np.ndarray:
  """floor(log2(n)) for n = 0..size (0 for n = 0 and 1), exact integers."""
  table = np.zeros(size + 1, np.int32)
  for n in range(2, size + 1):
    table[n] = table[n // 2] + 1
  return table


def _doubling(x: jnp.ndarray, axis: int, levels: int,
              stack_axis: int) -> jnp.ndarray:
  """Stacks, on a new axis at `stack_axis` (< axis), the running maxima of x
  over windows of 2^k along `axis` (k = 0..levels-1), each starting at its
  index. Entries whose window would pass the end hold some in-range max: no
  query of `roi_spatial_pyramid_pool` reads them."""
  out = [x]
  length = x.shape[axis]
  for level in range(1, levels):
    shift = 1 << (level - 1)
    prev = out[-1]
    index = [slice(None)] * x.ndim
    index[axis] = slice(shift, None)
    tail = [slice(None)] * x.ndim
    tail[axis] = slice(length - shift, None)
    moved = jnp.concatenate([prev[tuple(index)], prev[tuple(tail)]], axis=axis)
    out.append(jnp.maximum(prev, moved))
  return jnp.stack(out, axis=stack_axis)


def sparse_table(feature_maps: jnp.ndarray, max_rows: int | None = None,
                 max_cols: int | None = None) -> jnp.ndarray:
  """(B, H, W, C) -> (B, A, Bw, H, W, C): [i, a, b, y, x] is the max of map i
  over rows [y, y + 2^a) and columns [x, x + 2^b), for windows up to
  `max_rows` x `max_cols` cells (default H x W): 2^a <= max_rows."""
  _, height, width, _ = feature_maps.shape
  max_rows = min(height, max_rows or height)
  max_cols = min(width, max_cols or width)
  rows = _doubling(feature_maps, 1, int(_floor_log2(max_rows)[max_rows]) + 1,
                   stack_axis=1)  # (B, A, H, W, C)
  return _doubling(rows, 3, int(_floor_log2(max_cols)[max_cols]) + 1,
                   stack_axis=2)  # (B, A, Bw, H, W, C)


def _bins(start, stop, num_bins: int):
  """(first cell, length) of the exact rule's bins of the ranges [start, stop):
  bin i covers [start + floor(i*h/n), start + ceil((i+1)*h/n)), h = stop - start."""
  size = stop - start
  i = jnp.arange(num_bins)
  lo = start[:, None] + (i * size[:, None]) // num_bins
  hi = start[:, None] - (-(i + 1) * size[:, None]) // num_bins
  return lo, hi - lo


def _gathered_levels(levels: Sequence[int]) -> tuple[int, ...]:
  """The levels read from the table: the finest alone when it nests the
  others (see the module docstring), else all of them."""
  finest = max(levels)
  if all(finest % n == 0 for n in levels):
    return (finest,)
  return tuple(sorted(set(levels)))


def table_bound(box_rows: int, box_cols: int,
                levels: Sequence[int] = (6, 3, 2, 1)) -> tuple[int, int]:
  """The largest (rows, cols) whose boxes need the same sparse table as boxes
  of at most box_rows x box_cols: as `max_box_cells`, it keeps the distinct
  static values (compilations) few. A table of depth d serves bins of up to
  2^(d-1) * 2 cells, i.e. boxes of up to n (2^d - 2) cells at level n."""
  n = min(_gathered_levels(levels))

  def bound(cells):
    depth = int(_floor_log2(-(-cells // n) + 1)[-1]) + 1
    return n * ((1 << depth) - 2)

  return bound(max(1, box_rows)), bound(max(1, box_cols))


def roi_spatial_pyramid_pool(feature_map: jnp.ndarray, boxes: jnp.ndarray,
                             levels: Sequence[int] = (6, 3, 2, 1), *,
                             valid: jnp.ndarray | None = None,
                             image_index: jnp.ndarray | None = None,
                             max_box_cells: tuple[int, int] | None = None
                             ) -> jnp.ndarray:
  """Pools every box of a feature map into `spatial_pyramid_pool`'s vector.

  Args:
    feature_map: one image's map (H, W, C), or several maps of one shape
      (B, H, W, C) with `image_index` saying which map each box is on.
    boxes: int (R, 4) as (y0, x0, y1, x1), half-open cell ranges on the map,
      0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W (see `core.projection` for
      the projection of image windows). Boxes outside that contract are clamped
      into it (so that no index leaves the map); mark padding with `valid`.
    levels: the pyramid, as for `spatial_pyramid_pool`.
    valid: optional bool (R,): rows of boxes where it is False are zeros.
    image_index: int (R,), the map of each box when `feature_map` is (B, H, W, C).
    max_box_cells: optional static (rows, cols), at least the height and the
      width of every box: the sparse table then stops at the longest bin of
      such a box instead of one of the whole map (2.2x less table for the
      boxes one scale of multi-scale detection gets on a 74 x 99 map). A
      larger box would read past the table: pass a true bound (the caller
      knows its boxes), best rounded up by `table_bound` so that few bounds,
      hence few compilations, occur.

  Returns:
    (R, C * sum(n * n)) in the map's dtype: per level n, the n x n grid of bin
    maxima flattened in (row, column, channel) order, levels concatenated.
  """
  if feature_map.ndim == 3:
    feature_map = feature_map[None]
  if feature_map.ndim != 4:
    raise ValueError('roi_spatial_pyramid_pool expects a (H, W, C) or (B, H, W, '
                     f'C) feature map, got shape {feature_map.shape}.')
  if not levels or min(levels) < 1:
    raise ValueError(f'roi_spatial_pyramid_pool needs levels >= 1, got {levels}.')
  boxes = jnp.asarray(boxes)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f'boxes must be (R, 4) as (y0, x0, y1, x1), got shape '
                     f'{boxes.shape}.')
  num_maps, height, width, channels = feature_map.shape
  num_boxes = boxes.shape[0]
  if image_index is None:
    if num_maps != 1:
      raise ValueError('several feature maps need an image_index per box.')
    image_index = jnp.zeros((num_boxes,), jnp.int32)
  boxes = boxes.astype(jnp.int32)
  y0 = jnp.clip(boxes[:, 0], 0, height - 1)
  x0 = jnp.clip(boxes[:, 1], 0, width - 1)
  y1 = jnp.clip(boxes[:, 2], y0 + 1, height)
  x1 = jnp.clip(boxes[:, 3], x0 + 1, width)
  finest = max(levels)
  gathered = _gathered_levels(levels)
  # The longest bin of the coarsest gathered level: ceil(h / n) + 1 cells
  # for boxes of at most h rows (the map's height unless told less).
  box_rows, box_cols = max_box_cells or (height, width)
  max_rows = min(height, -(-min(height, box_rows) // min(gathered)) + 1)
  max_cols = min(width, -(-min(width, box_cols) // min(gathered)) + 1)
  table = sparse_table(feature_map, max_rows, max_cols)
  log2_h = jnp.asarray(_floor_log2(height).clip(max=table.shape[1] - 1))
  log2_w = jnp.asarray(_floor_log2(width).clip(max=table.shape[2] - 1))
  image = image_index.astype(jnp.int32)[:, None, None]
  grids = {}
  for n in gathered:
    top, rows = _bins(y0, y1, n)  # (R, n) each
    left, cols = _bins(x0, x1, n)
    a, b = log2_h[rows], log2_w[cols]
    bottom = top + rows - (1 << a)  # start of the lower covering window
    right = left + cols - (1 << b)
    a, b = a[:, :, None], b[:, None, :]
    parts = [table[image, a, b, y[:, :, None], x[:, None, :]]
             for y in (top, bottom) for x in (left, right)]  # (R, n, n, C) each
    grids[n] = jnp.maximum(jnp.maximum(parts[0], parts[1]),
                           jnp.maximum(parts[2], parts[3]))
  pooled = []
  for n in levels:
    if n in grids:
      grid = grids[n]
    else:  # a nested level: maxima over k x k blocks of the finest grid
      k = finest // n
      grid = grids[finest].reshape(num_boxes, n, k, n, k, channels).max(
          axis=(2, 4))
    pooled.append(grid.reshape(num_boxes, n * n * channels))
  out = jnp.concatenate(pooled, axis=1)
  assert out.shape[1] == spp_output_dim(channels, levels)
  if valid is not None:
    out = jnp.where(jnp.asarray(valid)[:, None], out, jnp.zeros_like(out))
  return out
