"""conv5 of a whole image at several scales, and each box pooled at its scale
(the paper's section 4: the feature maps are computed once per image and scale,
then every region proposal is pooled from them).

Each scale resizes the image so that its short side is s, each side rounded to a
multiple of `step` (the shape buckets of the full-image eval protocol), so the
network compiles once per bucket, not once per image. Boxes are grouped by the
scale they are pooled at and padded (`padded_count`) with a mask,
so region pooling compiles once per (map shape, padded count).
"""

import dataclasses
from typing import Sequence

import jax
import numpy as np

from sppnet_jax.core import projection
from sppnet_jax.core.data import image_ops
from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool, table_bound
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.errors import DataError

# R-CNN and SPP-net scale the features of their SVMs and box regressors so that
# the mean L2 norm is 20 (the range of their C and ridge was tuned on that).
TARGET_NORM = 20.0


@dataclasses.dataclass(frozen=True)
class ScaledMap:
  """conv5 (h, w, C) of the image resized by (factor_y, factor_x)."""
  conv5: jax.Array
  factor_y: float
  factor_x: float


class MultiScaleConv5:
  """conv5 maps of whole images at `scales` (short sides) with one model."""

  def __init__(self, model, params, scales: Sequence[int] = (688,),
               step: int = 32, antialias: bool = False):
    self.model, self.params = model, params
    self.scales, self.step, self.antialias = tuple(scales), step, antialias

    def conv5_of_image(params, images):
      return model.apply({'params': params}, normalize_images(images, model.dtype),
                         method='features')[0]

    self._features = jax.jit(conv5_of_image)

  def resized_shape(self, height: int, width: int,
                    scale: int) -> tuple[int, int]:
    """The (height, width) an image is resized to for `scale`."""
    return image_ops.full_image_size(height, width, scale, self.step)

  def resized(self, image: np.ndarray) -> list[np.ndarray]:
    """uint8 (H, W, 3) -> the image at every scale, as the eval protocols'
    full-image views resize it (bilinear, each side a multiple of `step`)."""
    height, width = image.shape[:2]
    out = []
    for scale in self.scales:
      shape = self.resized_shape(height, width, scale)
      out.append(image_ops.round_to_uint8(image_ops.resize_bilinear(
          image, shape, self.antialias)).numpy())
    return out

  def __call__(self, image: np.ndarray) -> list[ScaledMap]:
    height, width = image.shape[:2]
    return [ScaledMap(self._features(self.params, resized[None]),
                      resized.shape[0] / height, resized.shape[1] / width)
            for resized in self.resized(image)]


def _pool_padded(conv5, cells, valid, levels, max_box_cells):
  return roi_spatial_pyramid_pool(conv5, cells, levels, valid=valid,
                                  max_box_cells=max_box_cells)


_pool_jitted = jax.jit(_pool_padded, static_argnums=(3, 4))


# Region pooling compiles once per (map shape, box count, table): each
# compiled program holds dozens of the process's memory maps, and the 5-scale
# embedded run once made thousands of programs and exhausted them. So maps are
# padded with zeros to a multiple of MAP_CELLS_STEP cells (boxes never reach
# the padding: 239 conv5 shapes of the embedded training set over 5 scales
# become 33), and there are two tables per map: one cut for boxes of at most
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
                input_size: int = 224) -> list[tuple[np.ndarray, jax.Array]]:
  """The (R, 4) pixel boxes of the original image pooled, each at the scale
  `projection.choose_scales` picks (the scaled area closest to input_size^2,
  the network's training input) and projected onto that scale's conv5 map:
  per scale some box is pooled at, (rows, pooled) with the boxes' indices in
  `boxes` and their (padded_count, C * sum(n^2)) vectors, left on the device
  (rows past len(rows) are zeros)."""
  boxes = np.asarray(boxes, np.float32)
  choice = projection.choose_scales(boxes, image_height, image_width, scales,
                                    scale_rule, input_size)
  groups = []
  for k, scaled in enumerate(maps):
    rows = np.flatnonzero(choice == k)
    if not rows.size:
      continue
    scaled_boxes = projection.scale_boxes(boxes[rows], scaled.factor_y,
                                          scaled.factor_x)
    cells = projection.project_boxes(scaled_boxes, *scaled.conv5.shape[:2],
                                     projection_rule)
    padded = padded_count(len(rows), box_bucket)
    cells = np.pad(cells, ((0, padded - len(rows)), (0, 0)))
    valid = np.arange(padded) < len(rows)
    groups.append((rows, pool_cells(scaled.conv5, cells, valid, levels)))
  return groups


def pool_boxes(maps: Sequence[ScaledMap], boxes: np.ndarray, image_height: int,
               image_width: int, scales: Sequence[int],
               levels: Sequence[int] = (6, 3, 2, 1), **options) -> np.ndarray:
  """(R, C * sum(n^2)) pooled vectors of (R, 4) pixel boxes, in their order,
  as NumPy (`pool_groups`, whose keyword options it takes)."""
  channels = maps[0].conv5.shape[-1]
  out = np.zeros((len(boxes), channels * sum(n * n for n in levels)), np.float32)
  for rows, pooled in pool_groups(maps, boxes, image_height, image_width,
                                  scales, levels, **options):
    out[rows] = np.asarray(pooled)[:len(rows)]
  return out


def mean_norm_scale(features, target_norm: float = TARGET_NORM) -> float:
  """target_norm / the mean L2 norm of the (N, D) feature rows: the authors'
  scalar (`spp_scale_features.m`) that makes the average norm 20. Multiply
  training and test features by the same factor."""
  f = np.asarray(features)
  norms = np.sqrt(np.einsum('nd,nd->n', f, f, dtype=np.float64))
  mean = float(norms.mean()) if norms.size else 0.0
  if not mean > 0 or not np.isfinite(mean):
    raise DataError(f'cannot scale features of mean norm {mean}: give at '
                    'least one non-zero, finite feature vector')
  return target_norm / mean
