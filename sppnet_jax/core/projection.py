"""Image windows -> conv5 cells (the paper's Appendix A), and the scale each
window is pooled at: shared by multi-view testing on feature maps
(classification) and detection.

Conventions. A pixel box is (y0, x0, y1, x1) in continuous pixel coordinates of
the image the network sees: pixel i spans [i, i + 1), so the box of pixels
0..223 is (0, 0, 224, 224). A cell box is (y0, x0, y1, x1), half-open cell
ranges on the conv5 map, as `roi_spatial_pyramid_pool` takes them. Both work on
NumPy and JAX arrays alike.

The geometry comes from the network's layer table
(`architectures.receptive_field_centres`): conv5 cell j is centred on image
coordinate c + S j; c = 20.5 and S = 16 for ZF-5, c = 8.5 and S = 12 for
Overfeat-5/7.

* 'paper': left/top x' = floor((x - c) / S) + 1, right/bottom
  x' = ceil((x - c) / S) - 1 (inclusive): the paper's rule, whose frame puts
  cell x' at S x', moved by the offset c ("if the padding is not floor(p/2), add
  a proper offset"). It keeps exactly the cells whose receptive-field centres
  lie inside the box. A 224 x 224 window at scale 224 maps to all 13 x 13 cells.
* 'authors_code': the released code (`spm_pool_caffe_mex.cpp`), in 1-based
  pixels p and 1-based cells: left = floor((p - 6.5) / 16) + 1, right =
  ceil((p - 3.5) / 16) - 1; 6.5 and 3.5 are c1 - S + 1.5 and c1 - S - 1.5 with
  c1 = c + 0.5 = 21 the 1-based centre of cell 1: the paper's rule with 1.5
  pixels of slack on each side (for other networks, the same with their c
  and S).

With either rule a reversed box (right < left) collapses to the cell at its
midpoint, and the box is clamped to the map, so that every box has >= 1 cell.
"""

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.core import architectures

RULES = ('paper', 'authors_code')
SCALE_RULES = ('paper', 'authors_code')


def _xp(array):
  return jnp if isinstance(array, jax.Array) else np


def _project_axis(lo, hi, size: int, rule: str, centre: float, stride: int):
  """Half-open cell range [first, last + 1) of the pixel range [lo, hi)."""
  xp = _xp(lo)
  if rule == 'paper':
    first = xp.floor((lo - centre) / stride) + 1
    last = xp.ceil((hi - centre) / stride) - 1
  elif rule == 'authors_code':
    c1 = centre + 0.5  # 1-based pixel coordinates: the first pixel is lo + 1
    first = xp.floor((lo + 1 - (c1 - stride + 1.5)) / stride) + 1 - 1
    last = xp.ceil((hi - (c1 - stride - 1.5)) / stride) - 1 - 1
  else:
    raise ValueError(f'unknown projection rule {rule!r}: use one of {RULES}.')
  first, last = first.astype(np.int32), last.astype(np.int32)
  middle = (first + last) // 2
  reversed_ = last < first
  first = xp.where(reversed_, middle, first)
  last = xp.where(reversed_, middle, last)
  first = xp.clip(first, 0, size - 1)
  last = xp.clip(last, first, size - 1)
  return first, last + 1


def project_boxes(boxes, map_height: int, map_width: int, rule: str = 'paper',
                  architecture: str = 'zf5'):
  """(R, 4) pixel boxes of the scaled image -> (R, 4) int32 cell boxes on its
  (map_height, map_width) conv5 map of the network `architecture`."""
  centre, stride = architectures.receptive_field_centres(architecture)
  xp = _xp(boxes)
  boxes = boxes.astype(np.float32) if xp is np else boxes.astype(jnp.float32)
  y0, y1 = _project_axis(boxes[:, 0], boxes[:, 2], map_height, rule, centre, stride)
  x0, x1 = _project_axis(boxes[:, 1], boxes[:, 3], map_width, rule, centre, stride)
  return xp.stack([y0, x0, y1, x1], axis=1)


def scale_boxes(boxes, factor_y, factor_x):
  """Pixel boxes of an image resized by (factor_y, factor_x)."""
  xp = _xp(boxes)
  return boxes * xp.asarray([factor_y, factor_x, factor_y, factor_x], np.float32)


def choose_scales(boxes, image_height: int, image_width: int, scales,
                  rule: str = 'paper', input_size: int = 224,
                  architecture: str = 'zf5'):
  """The index into `scales` (short sides) each box is pooled at.

  'paper': the scale at which the scaled box's area is closest to
  input_size^2 (224^2, the network's training input). 'authors_code': the
  scale at which the scaled box's side sqrt(area) is closest to the side of the
  training input's conv5 map in pixels, conv5_size(224) * S = 13 * 16 = 208
  for ZF-5 (18 * 12 = 216 for Overfeat-5/7).
  """
  xp = _xp(boxes)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  shortest = (min(image_height, image_width) if xp is np
              else jnp.minimum(image_height, image_width))  # traced sides
  factors = xp.asarray(scales, np.float32) / shortest
  scaled_area = area[:, None] * factors[None, :] ** 2
  if rule == 'paper':
    distance = xp.abs(scaled_area - float(input_size) ** 2)
  elif rule == 'authors_code':
    _, stride = architectures.receptive_field_centres(architecture)
    target = architectures.conv5_size(input_size, architecture) * stride
    distance = xp.abs(xp.sqrt(scaled_area) - target)
  else:
    raise ValueError(f'unknown scale rule {rule!r}: use one of {SCALE_RULES}.')
  return xp.argmin(distance, axis=1).astype(np.int32)
