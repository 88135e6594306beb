"""Greedy non-maximum suppression, per class, for SPP-net detection.

The detector scores ~2,000 proposals per image for every class, and neighbouring
proposals of one object all score high. As in R-CNN and SPP-net, each class is
reduced by greedy NMS (the paper uses an IoU threshold of 0.3) and the image then
keeps at most `max_detections` boxes over all classes (100 in the paper) for the
VOC evaluation.

Two versions give the same kept boxes in the same order: `nms` / `batched_nms`
in NumPy on the host, with a variable-size result, and `nms_padded` /
`batched_nms_padded`, jitted JAX with fixed shapes (a padded box count N with a
`valid` mask and a static `max_output`), so that they compile once per
(N, max_output) and can run next to the scoring on the device.

Conventions:
  * Boxes are float (x0, y0, x1, y1). With `plus_one=False` (the default) they
    are continuous coordinates: width x1 - x0, height y1 - y0. With
    `plus_one=True` they are the VOC devkit's / R-CNN's inclusive pixel indices:
    width x1 - x0 + 1, so (0, 0, 9, 9) is 10 x 10 pixels, area 100. Widths,
    heights and intersection sides are clipped at 0, so zero-area and reversed
    boxes (x1 < x0 or y1 < y0, past the convention's offset) have area 0.
  * IoU is `boxes.pairwise_iou`: intersection / union, and 0 where the union
    is 0: a zero-area box has
    IoU 0 with every box, itself and its copies included, so it is never
    suppressed and suppresses nothing.
  * Greedy: take the highest-scoring remaining box, drop every remaining box
    whose IoU with it is strictly greater than `iou_threshold` (IoU equal to the
    threshold is kept), repeat. Threshold 0 drops every overlapping box; 1 drops
    none.
  * Ties in score: the earlier index first (a stable sort on -scores), both
    in the processing order and in the output order. Scores must not be NaN.
  * Results are indices into the inputs, in descending score order.
  * The host version computes IoU in float64, the JAX version in float32 (or
    the boxes' wider float type); an IoU within float32 rounding of the
    threshold may be decided differently by the two.
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.detection import boxes as box_lib


def _check(boxes, scores, name='scores'):
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f'boxes must be (N, 4), got {boxes.shape}')
  if scores.shape != (boxes.shape[0],):
    raise ValueError(f'{name} must be ({boxes.shape[0]},), got {scores.shape}')


def nms(boxes, scores, iou_threshold: float, plus_one: bool = False) -> np.ndarray:
  """Greedy NMS on the host: (N, 4) boxes, (N,) scores -> int64 indices of the
  kept boxes, in descending score order (ties: earlier index first): one
  class of `batched_nms`."""
  scores = np.asarray(scores)
  return batched_nms(boxes, scores, np.zeros(scores.shape[:1], np.int64),
                     iou_threshold, plus_one=plus_one)


def _greedy_by_class(boxes, scores, classes, iou_threshold: float,
                     plus_one: bool) -> np.ndarray:
  """The kept boxes of greedy NMS run within each class (int64 indices, in
  no particular order). The classes are stepped together: each step takes
  every class's best remaining box and drops the boxes of its class that
  it overlaps by more than the threshold, so the Python loop runs as many
  times as the class with the most kept boxes keeps, and every step is one
  vectorised IoU of (classes, boxes per class)."""
  count = len(scores)
  _, group = np.unique(classes, return_inverse=True)
  # Each class's boxes by descending score, ties by index.
  order = np.lexsort((np.arange(count), -scores, group))
  sizes = np.bincount(group)
  sorted_group = group[order]
  column = np.arange(count) - (np.cumsum(sizes) - sizes)[sorted_group]
  index = np.full((len(sizes), sizes.max()), -1, np.int64)
  index[sorted_group, column] = order
  grid = np.zeros(index.shape + (4,), np.float64)
  grid[sorted_group, column] = boxes[order]
  remaining = index >= 0
  active = np.arange(len(sizes))
  kept = []
  while active.size:
    best = remaining[active].argmax(axis=1)  # the first remaining: the best
    kept.append(index[active, best])
    remaining[active, best] = False
    iou = box_lib.pairwise_iou(grid[active, best][:, None], grid[active],
                               plus_one)[:, 0]
    remaining[active] &= iou <= iou_threshold
    active = active[remaining[active].any(axis=1)]
  return np.concatenate(kept)


def batched_nms(boxes, scores, classes, iou_threshold: float,
                max_detections: int | None = None,
                plus_one: bool = False) -> np.ndarray:
  """Per-class NMS on the host (boxes of different classes never suppress each
  other), then the `max_detections` best over all classes: int64 indices in
  descending score order (ties: earlier index first)."""
  boxes = np.asarray(boxes, np.float64)
  scores, classes = np.asarray(scores), np.asarray(classes)
  _check(boxes, scores)
  _check(boxes, classes, 'classes')
  if not len(scores):
    return np.zeros(0, np.int64)
  kept = np.sort(_greedy_by_class(boxes, scores, classes, iou_threshold,
                                  plus_one))
  kept = kept[np.argsort(-scores[kept], kind='stable')]
  return (kept if max_detections is None else kept[:max_detections]).astype(
      np.int64)


def _greedy_padded(boxes, scores, valid, classes, iou_threshold, max_output,
                   plus_one):
  """The fixed-shape greedy NMS behind `nms_padded` and `batched_nms_padded`."""
  n = boxes.shape[0]
  _check(boxes, scores)
  _check(boxes, valid, 'valid')
  dtype = jnp.promote_types(boxes.dtype, jnp.float32)
  boxes = boxes.astype(dtype)
  iota = lax.iota(jnp.int32, n)
  # Valid boxes first, by descending score, ties by index.
  _, _, order = lax.sort(
      ((~valid.astype(bool)).astype(jnp.int32), -scores, iota), num_keys=3)
  sorted_boxes = boxes[order]
  n_valid = jnp.sum(valid.astype(jnp.int32))
  # suppresses[i, j]: box i (in score order) drops the later box j.
  suppresses = (box_lib.pairwise_iou(sorted_boxes, sorted_boxes, plus_one,
                                     xp=jnp) >
                jnp.asarray(iou_threshold, dtype))
  suppresses &= iota[None, :] > iota[:, None]
  if classes is not None:
    sorted_classes = classes[order]
    suppresses &= sorted_classes[:, None] == sorted_classes[None, :]

  def not_done(carry):
    i, count, _ = carry
    return (i < n_valid) & (count < max_output)

  def step(carry):
    i, count, keep = carry
    kept = keep[i]
    row = lax.dynamic_index_in_dim(suppresses, i, keepdims=False)
    keep = jnp.where(kept, keep & ~row, keep)
    return i + 1, count + kept.astype(jnp.int32), keep

  keep = iota < n_valid
  _, count, keep = lax.while_loop(not_done, step, (jnp.int32(0), jnp.int32(0),
                                                   keep))
  # Boxes past where the loop stopped are unprocessed but still True in keep;
  # the first max_output True are exactly the kept ones.
  (positions,) = jnp.nonzero(keep, size=max_output, fill_value=0)
  keep_mask = jnp.arange(max_output) < count
  indices = jnp.where(keep_mask, order[positions], -1).astype(jnp.int32)
  return indices, keep_mask


@functools.partial(jax.jit, static_argnames=('max_output', 'plus_one'))
def nms_padded(boxes, scores, valid, iou_threshold, max_output: int,
               plus_one: bool = False):
  """Greedy NMS with fixed shapes, jitted: (N, 4) boxes, (N,) scores, (N,) bool
  `valid` (False = padding, never kept) -> (indices (max_output,) int32,
  keep_mask (max_output,) bool).

  indices[keep_mask] (a prefix) equals `nms` on the valid boxes, mapped back to
  indices into the N inputs, truncated to max_output; unused slots hold -1. The
  threshold is traced (changing it does not recompile); N, max_output and
  plus_one are static. O(N^2) memory for the IoU matrix.
  """
  return _greedy_padded(boxes, scores, valid, None, iou_threshold, max_output,
                        plus_one)


@functools.partial(jax.jit, static_argnames=('max_output', 'plus_one'))
def batched_nms_padded(boxes, scores, classes, valid, iou_threshold,
                       max_output: int, plus_one: bool = False):
  """Per-class `nms_padded`: boxes suppress only boxes of the same class (an
  IoU matrix masked by equal class, exact for any coordinates). The output
  equals `batched_nms(..., max_detections=max_output)` on the valid boxes;
  unused slots hold -1 with keep_mask False."""
  return _greedy_padded(boxes, scores, valid, classes, iou_threshold,
                        max_output, plus_one)
