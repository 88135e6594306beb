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
* (x0, y0, x1, y1), continuous (torchvision's, and `nms.py`'s): the columns
  swapped.

Every function works on NumPy arrays of shape (..., 4).
"""

import numpy as np


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
  """Continuous (x0, y0, x1, y1) -> (y0, x0, y1, x1) (exact in any dtype)."""
  b = np.asarray(xyxy)
  return b[..., [1, 0, 3, 2]]


to_xyxy = from_xyxy  # the same column swap, back


def clip_to_image(boxes, height: int, width: int) -> np.ndarray:
  """Boxes clipped to the image [0, height] x [0, width]."""
  b = np.asarray(boxes, np.float32)
  limits = np.array([height, width, height, width], np.float32)
  return np.clip(b, 0, limits)


def areas(boxes) -> np.ndarray:
  """Areas in pixels; 0 for zero-area and reversed boxes."""
  b = np.asarray(boxes, np.float32)
  return (np.maximum(b[..., 2] - b[..., 0], 0)
          * np.maximum(b[..., 3] - b[..., 1], 0))


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
  """(A, B) float64 IoU of library boxes (continuous, no +1; 0 where the union
  is 0): `nms.iou_matrix`'s formula, which names its columns (x0, y0, x1, y1)
  but is unchanged when x and y swap together."""
  from sppnet_jax.detection import nms  # pylint: disable=g-import-not-at-top
  return nms.iou_matrix(boxes_a, boxes_b, plus_one=False)


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
