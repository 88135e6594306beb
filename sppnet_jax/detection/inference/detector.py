"""The trained detector applied to one image: proposals pooled from its conv5
maps, fc6/fc7, class scores (SVMs or softmax), per-class NMS, the best
detections of the image, then box regression of those (the authors' order:
NMS on the proposals' boxes, regression after).

The same `detect_from_maps` serves evaluation (maps from the cache) and
`--mode=detect` (maps computed from the image), so the two cannot disagree on
anything but the maps' storage precision. The detector also gives the
training stages their region features (`region_outputs`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.conv5 import ScaledMap
from sppnet_jax.detection.features.pooling import (PoolingSettings,
                                                   padded_count, pool_groups,
                                                   pool_padded)
from sppnet_jax.detection.inference import head, nms
from sppnet_jax.detection.inference.linear_models import (BoxRegressor,
                                                          LinearClassifiers)
from sppnet_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Detections:
  """One image's detections, best first: boxes (N, 4) float32 in the library
  convention, scores (N,), classes (N,) int (dataset labels 0..K-1)."""
  boxes: np.ndarray
  scores: np.ndarray
  classes: np.ndarray


@dataclasses.dataclass
class Detector:
  """fc6-fc8 of the fine-tuned detector (fc6 and fc7 optionally as their
  truncated SVD's factors) with its classifiers and regressor."""
  model: object  # the SPP-net with (classes + 1) outputs
  params: dict  # its fc6-fc8 (only these see regions)
  pooling: PoolingSettings
  num_classes: int
  classifier: LinearClassifiers | None = None  # None: softmax of fc8
  regressor: BoxRegressor | None = None
  nms_iou: float = 0.3
  max_per_image: int = 100
  pre_nms_per_class: int = 300
  batch_boxes: int = 1024
  svd_factors: dict | None = None  # fc6/fc7 as `svd.factor_head` factors
  # The last `packed` buffer, handed back by `group_outputs` once read: the
  # next image of the same buffer shape writes into it in place instead of
  # allocating and zeroing a new one (hundreds of MB at 2,000 boxes).
  _spare_buffer: jax.Array | None = dataclasses.field(
      default=None, init=False, repr=False, compare=False)

  def __post_init__(self):
    # The head's weights live on the device from here on: a NumPy argument
    # would be copied to it again at every call of the jitted head.
    self.params = jax.device_put(self.params)
    if self.svd_factors is not None:
      self.svd_factors = jax.device_put(self.svd_factors)

  def pooled_groups(self, maps: Sequence[ScaledMap], boxes, height: int,
                    width: int) -> list:
    """`pooling.pool_groups` with the detector's pooling settings: the
    boxes pooled per scale, on the device."""
    return pool_groups(maps, boxes, height, width, **self.pooling.options())

  def packed(self, groups) -> tuple[np.ndarray, jax.Array]:
    """The groups' valid rows in one device buffer, group after group at
    running offsets: (rows (N,) the boxes' indices in buffer order, buffer
    (B, D) with N <= B; rows past N are padding: zeros, or rows of an
    earlier image when the spare buffer is reused). One group is its own
    buffer. Each group's padded array is written whole at its offset and the
    next group overwrites its padding, so B covers the last write; B is a
    `padded_count` of `batch_boxes` (bounded compilations)."""
    if len(groups) == 1:
      return groups[0]
    counts = [len(rows) for rows, _ in groups]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    end = max(int(o) + pooled.shape[0] for o, (_, pooled) in zip(offsets,
                                                                  groups))
    dim, dtype = groups[0][1].shape[1], groups[0][1].dtype
    shape = (padded_count(end, self.batch_boxes), dim)
    buffer, self._spare_buffer = self._spare_buffer, None
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
      buffer = _zeros(*shape, dtype)
    for offset, (_, pooled) in zip(offsets, groups):
      buffer = _write_rows(buffer, pooled, np.int32(offset))
    return np.concatenate([rows for rows, _ in groups]), buffer

  def group_outputs(self, groups, num_boxes: int,
                    layers: Sequence[str] = head.OUTPUT_LAYERS) -> dict:
    """{layer: (num_boxes, .) NumPy} of `pooled_groups`' boxes, in the
    boxes' order: fc6-fc8 applied on the device to the `packed` rows, at most
    `batch_boxes` per call, so the rows computed exceed the boxes only in the
    last call's padding; only `layers` are computed and copied to the host."""
    if not num_boxes:
      raise DataError('no regions to score')
    layers, out = tuple(layers), {}
    rows, pooled = self.packed(groups)
    for start in range(0, len(rows), self.batch_boxes):
      chunk = rows[start:start + self.batch_boxes]
      size = min(padded_count(len(chunk), self.batch_boxes),
                 pooled.shape[0] - start)
      part = head.layer_outputs(self.model, self.params, pooled, start, size,
                                layers, self.svd_factors)
      for name, value in part.items():
        if name not in out:
          out[name] = np.zeros((num_boxes,) + value.shape[1:], np.float32)
        out[name][chunk] = np.asarray(value)[:len(chunk)]
    if len(groups) > 1:  # a buffer of our own, read: the next image's
      self._spare_buffer = pooled
    return out

  def pooled_rows(self, groups, wanted) -> np.ndarray:
    """(len(wanted), D) NumPy pool5 vectors of the boxes `wanted` (indices
    into the boxes of `pooled_groups`, repeats allowed), taken on the device
    from the groups already pooled: no box is pooled twice."""
    wanted = np.asarray(wanted, np.int64)
    out = None
    for rows, pooled in groups:
      where = np.flatnonzero(np.isin(wanted, rows))
      if not where.size:
        continue
      positions = np.searchsorted(rows, wanted[where])  # rows is sorted
      padded = np.pad(positions, (0, padded_count(len(positions), 128)
                                  - len(positions)))
      if out is None:
        out = np.zeros((len(wanted), pooled.shape[1]), np.float32)
      out[where] = np.asarray(_take_rows(pooled, padded))[:len(where)]
    return out

  def region_outputs(self, maps: Sequence[ScaledMap], boxes, height: int,
                     width: int,
                     layers: Sequence[str] = head.OUTPUT_LAYERS) -> dict:
    """{layer: (R, .)} of (R, 4) boxes for `layers` of 'pool5', 'fc6', 'fc7',
    'logits', as NumPy."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return self.group_outputs(self.pooled_groups(maps, boxes, height, width),
                              len(boxes), layers)

  def class_scores(self, outputs: dict) -> np.ndarray:
    """(R, K) scores of the dataset's classes: NumPy (softmax in float64),
    or float32 jax.numpy for JAX outputs (traceable)."""
    if self.classifier is None and isinstance(outputs['logits'], jax.Array):
      return jax.nn.softmax(outputs['logits'].astype(jnp.float32),
                            axis=1)[:, 1:]
    if self.classifier is None:
      logits = outputs['logits'].astype(np.float64)
      logits -= logits.max(axis=1, keepdims=True)
      probs = np.exp(logits)
      probs /= probs.sum(axis=1, keepdims=True)
      return probs[:, 1:].astype(np.float32)
    return self.classifier(outputs[self.classifier.layer])

  def detect_from_maps(self, maps: Sequence[ScaledMap], proposals,
                       height: int, width: int) -> Detections:
    """The image's detections from its conv5 maps and (R, 4) proposals."""
    proposals = np.asarray(proposals, np.float32).reshape(-1, 4)
    if not len(proposals):
      return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                        np.zeros(0, np.int64))
    layer = self.score_layer()
    groups = self.pooled_groups(maps, proposals, height, width)
    scores = self.class_scores(self.group_outputs(groups, len(proposals),
                                                  (layer,)))
    rows, classes = select(proposals, scores, self.nms_iou,
                           self.pre_nms_per_class, self.max_per_image)
    boxes = proposals[rows]
    if self.regressor is not None and len(rows):
      deltas = self.regressor(self.pooled_rows(groups, rows), classes)
      boxes = box_lib.clip_to_image(box_lib.decode_deltas(boxes, deltas),
                                    height, width).astype(np.float32)
    return Detections(boxes, scores[rows, classes], classes)


  def score_layer(self) -> str:
    """The layer the class scores are computed from."""
    return 'logits' if self.classifier is None else self.classifier.layer

  def detect_padded(self, maps: Sequence[ScaledMap], proposals, valid,
                    height, width) -> tuple:
    """`detect_from_maps` with fixed shapes, traceable (the exported
    detector, inference/export.py): (P, 4) proposals (library convention,
    inside the image) with a (P,) bool `valid`, the image's height and width
    (traced int32 allowed) -> (boxes (M, 4) float32, scores (M,), classes
    (M,) int32, kept (M,) bool), M = max_per_image, the kept detections a
    prefix, best first; the slots past them hold zeros. The same steps as
    `detect_from_maps`: `pool_padded`, `head.layer_outputs`, `class_scores`,
    `select_padded`, the regressor (float32) and `decode_deltas`."""
    proposals = jnp.asarray(proposals, jnp.float32)
    num = proposals.shape[0]
    pooled = pool_padded(maps, proposals, valid, height, width,
                         **self.pooling.options())
    layer = self.score_layer()
    outputs = head.layer_outputs(self.model, self.params, pooled, 0, num,
                                 (layer,), self.svd_factors)
    scores = self.class_scores(outputs)
    rows, classes, kept = select_padded(proposals, scores, valid, self.nms_iou,
                                        self.pre_nms_per_class,
                                        self.max_per_image)
    boxes = proposals[rows]
    if self.regressor is not None:
      deltas = self.regressor(pooled[rows], classes)
      boxes = box_lib.clip_to_image(box_lib.decode_deltas(boxes, deltas),
                                    height, width)
    kept_scores = scores[rows, classes]
    zero = lambda a: jnp.where(kept.reshape((-1,) + (1,) * (a.ndim - 1)), a, 0)
    return zero(boxes), zero(kept_scores), zero(classes), kept


def _take(pooled, positions):
  return pooled[positions]


# One compilation per (group rows, padded count of rows taken).
_take_rows = jax.jit(_take)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _zeros(rows: int, dim: int, dtype):
  return jnp.zeros((rows, dim), dtype)


def _write(buffer, pooled, offset):
  return jax.lax.dynamic_update_slice_in_dim(buffer, pooled, offset, 0)


# One compilation per (buffer rows, group rows); the buffer is updated in place.
_write_rows = jax.jit(_write, donate_argnums=0)


def select(boxes, scores, nms_iou: float, pre_nms_per_class: int,
           max_per_image: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows, classes) of the kept detections, best first: per class the
  `pre_nms_per_class` best boxes, greedy NMS at `nms_iou`, then the
  `max_per_image` best over all classes."""
  num_boxes, num_classes = scores.shape
  take = min(pre_nms_per_class, num_boxes)
  top = np.argsort(-scores, axis=0, kind='stable')[:take]  # (take, K)
  rows = top.T.reshape(-1)
  classes = np.repeat(np.arange(num_classes), take)
  finite = np.isfinite(scores[rows, classes])  # classes without a model
  rows, classes = rows[finite], classes[finite]
  kept = nms.batched_nms(boxes[rows], scores[rows, classes], classes, nms_iou,
                         max_per_image)
  return rows[kept], classes[kept]


def select_padded(boxes, scores, valid, nms_iou: float, pre_nms_per_class: int,
                  max_per_image: int) -> tuple:
  """`select` with fixed shapes, traceable: (P, 4) boxes, (P, K) scores and
  a (P,) bool `valid` (False: padding, never selected) -> (rows, classes,
  kept), each (max_per_image,), the kept detections a prefix, best first,
  equal to `select` on the valid rows (`nms.batched_nms_padded`, IoU in
  float32); rows and classes past the prefix are 0."""
  num_boxes, num_classes = scores.shape
  take = min(pre_nms_per_class, num_boxes)
  masked = jnp.where(valid[:, None], scores, -jnp.inf)
  top = jnp.argsort(-masked, axis=0, stable=True)[:take]  # (take, K)
  rows = top.T.reshape(-1)
  classes = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), take)
  candidate_scores = masked[rows, classes]
  # Padding scored -inf, and classes without a model, are left out.
  finite = jnp.isfinite(candidate_scores)
  kept, keep_mask = nms.batched_nms_padded(
      boxes[rows], candidate_scores, classes, finite, nms_iou,
      max_output=max_per_image)
  kept = jnp.where(keep_mask, kept, 0)
  return (jnp.where(keep_mask, rows[kept], 0),
          jnp.where(keep_mask, classes[kept], 0), keep_mask)
