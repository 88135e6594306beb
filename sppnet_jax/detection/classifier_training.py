"""The stages after fine-tuning, trained over the conv5 cache of the training
split: per-class linear SVMs with hard-negative mining (`svm.train_svms`) on
one layer's features, and the class-specific box regressors
(`box_regression.fit`) on pooled conv5.

Features are computed image by image from the cached maps (pooling + the
fine-tuned fc layers), never held for the whole split: the mining loop reads
each image once, as the authors' cache reader does, and keeps only its cache
of hard negatives. Every process trains the same models from the same data
(they are small and deterministic), so no process waits on another's files.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from sppnet_jax.detection import box_regression, svm
from sppnet_jax.detection.detector import Detector, LinearClassifiers
from sppnet_jax.detection.features import mean_norm_scale
from sppnet_jax.detection.feature_cache import Conv5Store
from sppnet_jax.detection.proposals import ProposalStore
from sppnet_jax.detection.stage_files import load_npz, save_npz
from sppnet_jax.errors import DataError

# Images whose proposals estimate the features' mean norm (the authors'
# spp_feature_stats.m samples a fixed number of images too).
NORM_SAMPLE_IMAGES = 200


def _ground_truth(cached, use_difficult: bool):
  keep = np.ones(len(cached.gt_labels), bool) if use_difficult else (
      ~cached.gt_difficult)
  return cached.gt_boxes[keep], cached.gt_labels[keep]


def _layer_features(detector: Detector, cached, boxes, layer: str):
  return detector.region_outputs(cached.scaled_maps(), boxes, cached.height,
                                 cached.width, (layer,))[layer]


class _ImageFeatures:
  """One layer's features of an image's ground truth and proposals, computed
  from its cached maps; kept in memory while they fit `max_bytes` (the
  embedded set's all do; VOC's fc7 of 2,000 boxes per image would need
  160 GB), else recomputed on each pass."""

  def __init__(self, detector, store, proposal_store, layer, use_difficult,
               max_bytes):
    self.detector, self.store, self.proposals = detector, store, proposal_store
    self.layer, self.use_difficult = layer, use_difficult
    self.max_bytes, self.used = max_bytes, 0
    self._kept = {}

  def __call__(self, image_id):
    """(gt features, gt labels, proposal features, proposals, gt boxes)."""
    if image_id in self._kept:
      return self._kept[image_id]
    cached = self.store.load(image_id)
    proposals = self.proposals.load(image_id, (cached.height, cached.width))
    gt_boxes, gt_labels = _ground_truth(cached, self.use_difficult)
    boxes = np.concatenate([gt_boxes, proposals]).astype(np.float32)
    feats = (_layer_features(self.detector, cached, boxes, self.layer)
             if len(boxes) else np.zeros((0, 1), np.float32))
    entry = (feats[:len(gt_boxes)], gt_labels, feats[len(gt_boxes):],
             proposals, gt_boxes)
    if self.used + feats.nbytes <= self.max_bytes:
      self._kept[image_id] = entry
      self.used += feats.nbytes
    return entry


def train_classifiers(detector: Detector, store: Conv5Store,
                      proposal_store: ProposalStore, settings, *,
                      use_difficult: bool, num_classes: int,
                      memory_bytes: int = 2**32) -> LinearClassifiers:
  """Per-class SVMs on `settings.layer` (config.svm) of the detector."""
  image_ids = store.image_ids()
  features = _ImageFeatures(detector, store, proposal_store, settings.layer,
                            use_difficult, memory_bytes)
  sample = image_ids[::max(1, len(image_ids) // NORM_SAMPLE_IMAGES)]
  norms = [features(i)[2] for i in sample]
  norms = [f for f in norms if len(f)]
  if not norms:
    raise DataError('no proposals in the training split: compute them first.')
  scale = mean_norm_scale(np.concatenate(norms))
  positives = [[] for _ in range(num_classes)]
  for image_id in image_ids:
    gt_feats, gt_labels, *_ = features(image_id)
    for k in np.unique(gt_labels):
      positives[k].append(scale * gt_feats[gt_labels == k])
  present = [k for k in range(num_classes) if positives[k]]
  if not present:
    raise DataError('the training split has no ground-truth box: no SVM '
                    'can be trained.')
  if len(present) < num_classes:
    logging.warning('Classes %s have no ground-truth box in the training '
                    'split: they get no SVM and are never detected.',
                    sorted(set(range(num_classes)) - set(present)))
  positives = [np.concatenate(positives[k]) for k in present]

  def batches():
    for image_id in image_ids:
      _, gt_labels, feats, proposals, gt_boxes = features(image_id)
      if len(proposals):
        yield image_id, scale * feats, svm.class_overlaps(
            proposals, gt_boxes, gt_labels, num_classes)[:, present]

  config = svm.SvmConfig(
      c=settings.c, positive_weight=settings.positive_weight,
      bias_multiplier=settings.bias_multiplier, tol=settings.tol,
      negative_iou=settings.negative_iou,
      hard_threshold=settings.hard_threshold,
      evict_threshold=settings.evict_threshold,
      retrain_limit=settings.retrain_limit)
  result = svm.train_svms(positives, batches, config,
                          solver=svm.SOLVERS[settings.solver])
  for k, positives_k, negatives, primal, evicted in (
      result.history[-len(present):]):
    logging.info('SVM of class %d: %d positives, %d negatives, primal %.4g, '
                 '%d evicted.', present[k], positives_k, negatives, primal, evicted)
  dim = positives[0].shape[1]
  weights = np.zeros((dim, num_classes), np.float32)
  bias = np.full(num_classes, -np.inf, np.float32)  # never detected
  for k, trained in zip(present, result.svms):
    weights[:, k], bias[k] = trained.weights, trained.bias
  return LinearClassifiers(settings.layer, weights, bias, scale)


def train_box_regressor(detector: Detector, store: Conv5Store,
                        proposal_store: ProposalStore, settings, *,
                        use_difficult: bool,
                        num_classes: int) -> box_regression.BoxRegressor:
  """Per-class ridge regressors on the pooled conv5 of the proposals that
  overlap a ground-truth box by `settings.min_iou` (config.bbox_regression)."""
  features, deltas, classes = [], [], []
  for image_id in store.image_ids():
    cached = store.load(image_id)
    proposals = proposal_store.load(image_id, (cached.height, cached.width))
    gt_boxes, gt_labels = _ground_truth(cached, use_difficult)
    samples = box_regression.select_samples(proposals, gt_boxes, gt_labels,
                                            settings.min_iou)
    if not len(samples.indices):
      continue
    features.append(_layer_features(detector, cached,
                                    proposals[samples.indices], 'pool5'))
    deltas.append(samples.deltas)
    classes.append(samples.classes)
  if not features:
    raise DataError(f'no proposal overlaps a ground-truth box by '
                    f'{settings.min_iou}: box regression has nothing to learn '
                    'from; set --config.bbox_regression.enabled=False.')
  return box_regression.fit(np.concatenate(features), np.concatenate(deltas),
                            np.concatenate(classes), num_classes,
                            ridge=settings.ridge)


def save_regressor(path: str, model: box_regression.BoxRegressor) -> None:
  save_npz(path, weights=model.weights, num_samples=model.num_samples,
           feature_scale=np.float64(model.feature_scale),
           ridge=np.float64(model.ridge))


def load_regressor(path: str) -> box_regression.BoxRegressor:
  f = load_npz(path, ('weights', 'num_samples', 'feature_scale', 'ridge'))
  return box_regression.BoxRegressor(f['weights'], f['num_samples'],
                                     float(f['feature_scale']),
                                     float(f['ridge']))

