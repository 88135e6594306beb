"""Region pooling on conv5 maps: each box pooled at the scale it belongs to,
projected onto that scale's map, exact region SPP (`core.roi_spp`), with the
padding policy that bounds the compilations.

Boxes are grouped by the scale they are pooled at (`projection.choose_scales`)
and each group is padded (`padded_count`) with a mask; maps are padded to a
multiple of MAP_CELLS_STEP cells; so region pooling compiles once per (padded
map shape, padded box count, table), never once per image.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from sppnet_jax.core import projection
from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool, table_bound
from sppnet_jax.detection.features.conv5 import ScaledMap


@dataclasses.dataclass(frozen=True)
class PoolingSettings:
  """How a box becomes a pooled vector: the scales of the maps, the pyramid,
  the rules choosing a box's scale and projecting it onto cells, the
  backbone's training input side (the scale rule's target) and its network
  (whose strides the projection follows)."""
  scales: tuple
  levels: tuple
  scale_rule: str
  projection_rule: str
  input_size: int
  architecture: str = 'zf5'

  def options(self) -> dict:
    """The keywords of `pool_groups` and `pool_boxes` these settings fix."""
    return dict(scales=self.scales, levels=self.levels,
                scale_rule=self.scale_rule,
                projection_rule=self.projection_rule,
                input_size=self.input_size, architecture=self.architecture)

  @classmethod
  def of(cls, config, levels, input_size: int,
         architecture: str) -> 'PoolingSettings':
    """From the detection config's fields and the backbone's pyramid and
    network."""
    return cls(tuple(config.detection.scales), tuple(levels),
               config.detection.scale_rule, config.detection.projection_rule,
               int(input_size), architecture)


def _pool_padded(conv5, cells, valid, levels, max_box_cells):
  return roi_spatial_pyramid_pool(conv5, cells, levels, valid=valid,
                                  max_box_cells=max_box_cells)


_pool_jitted = jax.jit(_pool_padded, static_argnums=(3, 4))


# Region pooling compiles once per (padded map shape, padded box count,
# table), and each compiled program holds dozens of the process's memory maps:
# the number of programs must stay bounded over any data set. So maps are
# padded with zeros to a multiple of MAP_CELLS_STEP cells (boxes never reach
# the padding: the 239 conv5 shapes of the embedded training set over 5 scales
# become 33), and each map has two tables: one cut for boxes of at most
# SMALL_BOX_CELLS cells a side, the boxes one scale of a pyramid gets (the
# scale rule makes them about 224 pixels, 14 cells), and the full one.
MAP_CELLS_STEP = 8
SMALL_BOX_CELLS = 32


def _pad(conv5, widths):
  return jax.numpy.pad(conv5, widths)


_pad_jitted = jax.jit(_pad, static_argnums=1)


def _padded_map(conv5):
  height, width = conv5.shape[:2]
  widths = ((0, -height % MAP_CELLS_STEP), (0, -width % MAP_CELLS_STEP), (0, 0))
  if widths[0][1] == widths[1][1] == 0:
    return conv5
  if isinstance(conv5, np.ndarray):
    return np.pad(conv5, widths)
  return _pad_jitted(conv5, widths)  # compiles once per map shape, as conv5 did


def pool_cells(conv5, cells: np.ndarray, valid: np.ndarray, levels):
  """roi_spatial_pyramid_pool of (P, 4) cell ranges on one map (rows where
  `valid` is False are zeros), jitted on the map padded to MAP_CELLS_STEP,
  with the table cut for small boxes when every valid box is one."""
  small = table_bound(SMALL_BOX_CELLS, SMALL_BOX_CELLS, levels)
  sides = cells[valid, 2:] - cells[valid, :2]
  fits = bool(np.all(sides <= np.asarray(small)))
  return _pool_jitted(_padded_map(conv5), cells, valid, tuple(levels),
                      small if fits else None)


def padded_count(count: int, bucket: int) -> int:
  """Rows a call pads `count` boxes to: the next power of two (at least 8)
  up to `bucket`, then multiples of `bucket`: few compilations, and a handful
  of boxes is not padded to thousands."""
  if count > bucket:
    return -(-count // bucket) * bucket
  return min(max(8, 1 << max(count - 1, 0).bit_length()), max(bucket, 8))


def pool_groups(maps: Sequence[ScaledMap], boxes: np.ndarray, image_height: int,
                image_width: int, scales: Sequence[int],
                levels: Sequence[int] = (6, 3, 2, 1), *, scale_rule: str = 'paper',
                projection_rule: str = 'paper', box_bucket: int = 256,
                input_size: int = 224,
                architecture: str = 'zf5') -> list[tuple[np.ndarray, jax.Array]]:
  """The (R, 4) pixel boxes of the original image pooled, each at the scale
  `projection.choose_scales` picks (the scaled area closest to input_size^2,
  the network's training input) and projected onto that scale's conv5 map
  with the geometry of the network `architecture`:
  per scale some box is pooled at, (rows, pooled) with the boxes' indices in
  `boxes` and their (padded_count, C * sum(n^2)) vectors, left on the device
  (rows past len(rows) are zeros)."""
  boxes = np.asarray(boxes, np.float32)
  choice = projection.choose_scales(boxes, image_height, image_width, scales,
                                    scale_rule, input_size, architecture)
  groups = []
  for k, scaled in enumerate(maps):
    rows = np.flatnonzero(choice == k)
    if not rows.size:
      continue
    scaled_boxes = projection.scale_boxes(boxes[rows], scaled.factor_y,
                                          scaled.factor_x)
    cells = projection.project_boxes(scaled_boxes, *scaled.conv5.shape[:2],
                                     projection_rule, architecture)
    padded = padded_count(len(rows), box_bucket)
    cells = np.pad(cells, ((0, padded - len(rows)), (0, 0)))
    valid = np.arange(padded) < len(rows)
    groups.append((rows, pool_cells(scaled.conv5, cells, valid, levels)))
  return groups


def pool_padded(maps: Sequence[ScaledMap], boxes, valid, image_height,
                image_width, scales: Sequence[int],
                levels: Sequence[int] = (6, 3, 2, 1), *,
                scale_rule: str = 'paper', projection_rule: str = 'paper',
                input_size: int = 224, architecture: str = 'zf5'):
  """`pool_groups` with fixed shapes, traceable (the exported detector's):
  (P, 4) pixel boxes with a (P,) bool `valid` (False: padding), the image's
  height and width (traced int32 allowed), maps whose factors may be traced
  -> (P, C * sum(n^2)) pooled vectors, each valid box pooled at the scale
  `projection.choose_scales` picks, as `pool_groups` pools it; rows not
  valid are zeros. Every box is pooled on every map (masked), so the cost
  is the number of scales times P boxes."""
  boxes = jax.numpy.asarray(boxes, jax.numpy.float32)
  choice = projection.choose_scales(boxes, image_height, image_width, scales,
                                    scale_rule, input_size, architecture)
  total = None
  for k, scaled in enumerate(maps):
    scaled_boxes = projection.scale_boxes(boxes, scaled.factor_y,
                                          scaled.factor_x)
    cells = projection.project_boxes(scaled_boxes, *scaled.conv5.shape[:2],
                                     projection_rule, architecture)
    pooled = roi_spatial_pyramid_pool(scaled.conv5, cells, tuple(levels),
                                      valid=valid & (choice == k))
    total = pooled if total is None else total + pooled
  return total


def pool_boxes(maps: Sequence[ScaledMap], boxes: np.ndarray, image_height: int,
               image_width: int, scales: Sequence[int],
               levels: Sequence[int] = (6, 3, 2, 1), **options) -> np.ndarray:
  """(R, C * sum(n^2)) pooled vectors of (R, 4) pixel boxes, in their order,
  as NumPy (`pool_groups`, whose keyword options it takes)."""
  channels = maps[0].conv5.shape[-1]
  out = np.zeros((len(boxes), channels * sum(n * n for n in levels)),
                 np.float32)
  for rows, pooled in pool_groups(maps, boxes, image_height, image_width,
                                  scales, levels, **options):
    out[rows] = np.asarray(pooled)[:len(rows)]
  return out
