"""Region features of a split's cached images for the training stages after
fine-tuning: one layer of the fine-tuned detector (pooled conv5, fc6 or fc7)
for each image's ground-truth boxes and proposals, computed image by image
from the cached maps (pooling + the fine-tuned fc layers), never held for the
whole split unless it fits in memory.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sppnet_jax.detection.features.cache import CachedImage, Conv5Store
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.proposals.store import ProposalStore


def ground_truth(cached: CachedImage, use_difficult: bool):
  """The (G, 4) boxes and (G,) labels of the cached image that train: every
  object, or the non-difficult ones."""
  keep = np.ones(len(cached.gt_labels), bool) if use_difficult else (
      ~cached.gt_difficult)
  return cached.gt_boxes[keep], cached.gt_labels[keep]


def layer_features(detector: Detector, cached: CachedImage, boxes,
                   layer: str) -> np.ndarray:
  """(R, D) features of `layer` of (R, 4) boxes of the cached image."""
  return detector.region_outputs(cached.scaled_maps(), boxes, cached.height,
                                 cached.width, (layer,))[layer]


@dataclasses.dataclass(frozen=True)
class ImageFeatures:
  """One layer's features of an image's ground-truth boxes and proposals."""
  gt_features: np.ndarray  # (G, D)
  gt_labels: np.ndarray  # (G,)
  gt_boxes: np.ndarray  # (G, 4)
  proposal_features: np.ndarray  # (R, D)
  proposals: np.ndarray  # (R, 4)


class SplitFeatures:
  """`ImageFeatures` of the cached images of a split, by image id: kept in
  memory while they fit `max_bytes` (the embedded set's all do; VOC's fc7 of
  2,000 boxes per image would need 160 GB), else recomputed on each pass."""

  def __init__(self, detector: Detector, store: Conv5Store,
               proposal_store: ProposalStore, layer: str, use_difficult: bool,
               max_bytes: int):
    self.detector, self.store, self.proposals = detector, store, proposal_store
    self.layer, self.use_difficult = layer, use_difficult
    self.max_bytes, self.used = max_bytes, 0
    self._kept = {}

  def __call__(self, image_id: str) -> ImageFeatures:
    if image_id in self._kept:
      return self._kept[image_id]
    cached = self.store.load(image_id)
    proposals = self.proposals.load(image_id, (cached.height, cached.width))
    gt_boxes, gt_labels = ground_truth(cached, self.use_difficult)
    boxes = np.concatenate([gt_boxes, proposals]).astype(np.float32)
    feats = (layer_features(self.detector, cached, boxes, self.layer)
             if len(boxes) else np.zeros((0, 1), np.float32))
    entry = ImageFeatures(feats[:len(gt_boxes)], gt_labels, gt_boxes,
                          feats[len(gt_boxes):], proposals)
    if self.used + feats.nbytes <= self.max_bytes:
      self._kept[image_id] = entry
      self.used += feats.nbytes
    return entry
