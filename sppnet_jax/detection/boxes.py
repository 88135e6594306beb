"""Pixel boxes of detection: the one convention inside the library, and the
conversions at its edges.

Inside sppnet_jax a box is float (y0, x0, y1, x1) in continuous pixel
coordinates of its image: pixel i spans [i, i + 1), so the box of pixels
0..223 is (0, 0, 224, 224), its height y1 - y0 and width x1 - x0. It is the
order of `projection.project_boxes` (and of the (H, W) maps it projects onto)
and of TFDS's BBoxFeature. Data sources convert into it where they read
annotations, evaluation converts out of it where it calls the VOC devkit's
rules or pycocotools:

* VOC XML / devkit: (xmin, ymin, xmax, ymax), 1-based inclusive pixel indices,
  so the first pixel is 1 and the box of pixels 1..224 is 224 wide:
  y0 = ymin - 1, y1 = ymax.
* COCO json: [x, y, width, height] in continuous coordinates: y0 = y,
  y1 = y + height.
* (x0, y0, x1, y1), continuous (torchvision's, and `inference/nms.py`'s):
  the columns swapped.

Besides the conversions: areas, clipping, the mirror image, validation
(`checked`), IoU (`pairwise_iou`, `iou_matrix`, `best_match`) and R-CNN's box
deltas (`encode_deltas`, `decode_deltas`). Functions work on NumPy arrays of
shape (..., 4); `pairwise_iou` and the deltas also on JAX arrays.
"""

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.errors import DataError


def from_voc(xyxy) -> np.ndarray:
  """VOC (xmin, ymin, xmax, ymax), 1-based inclusive -> (y0, x0, y1, x1)."""
  b = np.asarray(xyxy, np.float32)
  return np.stack([b[..., 1] - 1, b[..., 0] - 1, b[..., 3], b[..., 2]], -1)


def to_voc(boxes) -> np.ndarray:
  """(y0, x0, y1, x1) -> VOC (xmin, ymin, xmax, ymax), 1-based inclusive."""
  b = np.asarray(boxes, np.float32)
  return np.stack([b[..., 1] + 1, b[..., 0] + 1, b[..., 3], b[..., 2]], -1)


def from_coco(xywh) -> np.ndarray:
  """COCO [x, y, width, height] -> (y0, x0, y1, x1)."""
  b = np.asarray(xywh, np.float32)
  return np.stack([b[..., 1], b[..., 0], b[..., 1] + b[..., 3],
                   b[..., 0] + b[..., 2]], -1)


def to_coco(boxes) -> np.ndarray:
  """(y0, x0, y1, x1) -> COCO [x, y, width, height]."""
  b = np.asarray(boxes, np.float32)
  return np.stack([b[..., 1], b[..., 0], b[..., 3] - b[..., 1],
                   b[..., 2] - b[..., 0]], -1)


def from_xyxy(xyxy) -> np.ndarray:
  """Continuous (x0, y0, x1, y1) -> (y0, x0, y1, x1) (exact in any dtype;
  JAX arrays stay JAX arrays)."""
  b = xyxy if isinstance(xyxy, jax.Array) else np.asarray(xyxy)
  return b[..., np.array([1, 0, 3, 2])]


to_xyxy = from_xyxy  # the same column swap, back


def clip_to_image(boxes, height, width) -> np.ndarray:
  """Boxes clipped to the image [0, height] x [0, width], float32 (JAX
  arrays, whose height and width may be traced, stay JAX arrays)."""
  if isinstance(boxes, jax.Array):
    limits = jnp.stack([height, width, height, width]).astype(jnp.float32)
    return jnp.clip(boxes.astype(jnp.float32), 0, limits)
  b = np.asarray(boxes, np.float32)
  limits = np.array([height, width, height, width], np.float32)
  return np.clip(b, 0, limits)


def areas(boxes) -> np.ndarray:
  """Areas in pixels; 0 for zero-area and reversed boxes."""
  b = np.asarray(boxes, np.float32)
  return (np.maximum(b[..., 2] - b[..., 0], 0)
          * np.maximum(b[..., 3] - b[..., 1], 0))


def checked(boxes, where: str) -> np.ndarray:
  """(N, 4) finite numbers -> float32 (an empty array -> (0, 4)), or a
  one-line DataError about `where` (what the boxes are)."""
  boxes = np.asarray(boxes)
  if boxes.size == 0:
    return np.zeros((0, 4), np.float32)
  if boxes.dtype.kind not in 'iuf':
    raise DataError(f'{where}: boxes must be numbers, got dtype {boxes.dtype}.')
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise DataError(f'{where}: boxes must be (N, 4), got {boxes.shape}.')
  with np.errstate(over='ignore'):
    boxes = boxes.astype(np.float32)
  if not np.all(np.isfinite(boxes)):
    raise DataError(f'{where}: {np.sum(~np.isfinite(boxes).all(1))} box(es) '
                    'hold NaN or infinite coordinates (in float32): drop or '
                    'fix them.')
  return boxes


def flip_left_right(boxes, width) -> np.ndarray:
  """Boxes of an image `width` pixels wide, mirrored left-right: in continuous
  pixels x0' = W - x1, x1' = W - x0 (pixel i goes to W - 1 - i); y unchanged.
  Flipping twice gives the boxes back."""
  b = np.asarray(boxes, np.float32)
  w = np.float32(width)
  return np.stack([b[..., 0], w - b[..., 3], b[..., 2], w - b[..., 1]], -1)


def pairwise_iou(a, b, plus_one: bool = False, xp=np):
  """(..., n, 4), (..., m, 4) -> (..., n, m) IoU (leading axes broadcast),
  the one formula of the library, in `xp` (NumPy or jax.numpy) and the
  inputs' dtype.

  Either column order works, (y0, x0, y1, x1) or (x0, y0, x1, y1), as long as
  both inputs use the same. `plus_one=False`: continuous coordinates, side
  y1 - y0; True: inclusive pixel indices (the VOC devkit's), side
  y1 - y0 + 1. Sides and intersection sides are clipped at 0, so zero-area
  and reversed boxes have area 0; IoU = intersection / union, and 0 where the
  union is 0 (a zero-area box overlaps nothing, not even itself).
  """
  offset = 1.0 if plus_one else 0.0
  a, b = a[..., :, None, :], b[..., None, :, :]
  area_a = (xp.maximum(a[..., 2] - a[..., 0] + offset, 0) *
            xp.maximum(a[..., 3] - a[..., 1] + offset, 0))
  area_b = (xp.maximum(b[..., 2] - b[..., 0] + offset, 0) *
            xp.maximum(b[..., 3] - b[..., 1] + offset, 0))
  inter_0 = xp.maximum(xp.minimum(a[..., 2], b[..., 2])
                       - xp.maximum(a[..., 0], b[..., 0]) + offset, 0)
  inter_1 = xp.maximum(xp.minimum(a[..., 3], b[..., 3])
                       - xp.maximum(a[..., 1], b[..., 1]) + offset, 0)
  inter = inter_0 * inter_1
  union = area_a + area_b - inter
  positive = union > 0
  return xp.where(positive, inter / xp.where(positive, union, 1), 0)


def iou_matrix(boxes_a, boxes_b, plus_one: bool = False) -> np.ndarray:
  """(A, 4), (B, 4) boxes -> (A, B) float64 IoU (`pairwise_iou`)."""
  a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
  b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
  return pairwise_iou(a, b, plus_one)


def best_match(boxes, gt_boxes) -> tuple[np.ndarray, np.ndarray]:
  """Each box's ground-truth box of highest IoU (the first on ties) and that
  IoU: (R,) int64 indices and (R,) float64; index 0 and IoU 0 without ground
  truth."""
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
  if not gt_boxes.shape[0]:
    return (np.zeros(boxes.shape[0], np.int64),
            np.zeros(boxes.shape[0], np.float64))
  iou = iou_matrix(boxes, gt_boxes)
  best = np.argmax(iou, axis=1)  # the first maximum
  return best.astype(np.int64), iou[np.arange(boxes.shape[0]), best]


# R-CNN's box deltas (its appendix C). A box is its centre (c_y, c_x) and size
# (h, w) in the library convention (continuous pixels, h = y1 - y0, no +1), and
# the deltas from a proposal P to a target G are
#   t_y = (G_cy - P_cy) / P_h,  t_x = (G_cx - P_cx) / P_w,
#   t_h = log(G_h / P_h),       t_w = log(G_w / P_w),
# ordered (t_y, t_x, t_h, t_w) like the boxes. `decode_deltas` inverts
# `encode_deltas`. NumPy inputs give NumPy results (training encodes, and the
# detector decodes, on the host); JAX inputs give JAX results (a jitted graph
# can decode).


def _namespace(*arrays):
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _centres_sizes(b):
  h, w = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
  return b[..., 0] + 0.5 * h, b[..., 1] + 0.5 * w, h, w


def encode_deltas(proposals, targets):
  """(..., 4) proposal and target boxes -> (..., 4) deltas (t_y, t_x, t_h, t_w).

  Every box needs a positive height and width (log sizes); with NumPy inputs a
  DataError says otherwise, with JAX inputs such boxes give inf or NaN.
  """
  xp = _namespace(proposals, targets)
  p, g = xp.asarray(proposals), xp.asarray(targets)
  dtype = xp.result_type(p.dtype, g.dtype, xp.float32)
  p, g = p.astype(dtype), g.astype(dtype)
  if xp is np:
    for name, b in (('proposals', p), ('targets', g)):
      if b.shape[-1:] != (4,):
        raise DataError(f'{name} must be (..., 4) boxes, got shape {b.shape}')
      if not np.all((b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])):
        raise DataError(f'{name} include boxes of zero or negative height or '
                        'width: drop them before encoding regression targets')
  p_cy, p_cx, p_h, p_w = _centres_sizes(p)
  g_cy, g_cx, g_h, g_w = _centres_sizes(g)
  return xp.stack([(g_cy - p_cy) / p_h, (g_cx - p_cx) / p_w,
                   xp.log(g_h / p_h), xp.log(g_w / p_w)], -1)


def decode_deltas(proposals, deltas):
  """(..., 4) proposal boxes and deltas (t_y, t_x, t_h, t_w) -> (..., 4) boxes.

  The inverse of `encode_deltas`; zero deltas return the proposals. Not
  clipped to the image: the authors clip after decoding (`clip_to_image`).
  """
  xp = _namespace(proposals, deltas)
  p, d = xp.asarray(proposals), xp.asarray(deltas)
  dtype = xp.result_type(p.dtype, d.dtype, xp.float32)
  p, d = p.astype(dtype), d.astype(dtype)
  p_cy, p_cx, p_h, p_w = _centres_sizes(p)
  cy, cx = p_cy + d[..., 0] * p_h, p_cx + d[..., 1] * p_w
  h, w = p_h * xp.exp(d[..., 2]), p_w * xp.exp(d[..., 3])
  return xp.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], -1)
