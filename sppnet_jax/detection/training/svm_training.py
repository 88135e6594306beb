"""The SVM stage: per-class linear SVMs with hard-negative mining
(`svm.train_svms`) on one layer's features of the training split's cached
images (`region_features`), scaled to a mean norm of 20 as the authors do.

The mining loop reads each image once, as the authors' cache reader does,
and keeps only its cache of hard negatives. Every process trains the same
models from the same data (they are small and deterministic), so no process
waits on another's files.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from sppnet_jax.detection.features.cache import Conv5Store
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.inference.linear_models import LinearClassifiers
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.training import svm
from sppnet_jax.detection.training.feature_scale import mean_norm_scale
from sppnet_jax.detection.training.region_features import SplitFeatures
from sppnet_jax.errors import DataError

# Images whose proposals estimate the features' mean norm (the authors'
# spp_feature_stats.m samples a fixed number of images too).
NORM_SAMPLE_IMAGES = 200


def train_classifiers(detector: Detector, store: Conv5Store,
                      proposal_store: ProposalStore, settings, *,
                      use_difficult: bool, num_classes: int, seed: int = 0,
                      memory_bytes: int = 2**32) -> LinearClassifiers:
  """Per-class SVMs on `settings.layer` of the detector (`settings`: the
  config's `svm` section); a class without a ground-truth box in the split
  gets bias -inf (never detected)."""
  image_ids = store.image_ids()
  features = SplitFeatures(detector, store, proposal_store, settings.layer,
                           use_difficult, memory_bytes)
  sample = image_ids[::max(1, len(image_ids) // NORM_SAMPLE_IMAGES)]
  norms = [features(i).proposal_features for i in sample]
  norms = [f for f in norms if len(f)]
  if not norms:
    raise DataError('no proposals in the training split: compute them first.')
  scale = mean_norm_scale(np.concatenate(norms))
  positives = [[] for _ in range(num_classes)]
  for image_id in image_ids:
    image = features(image_id)
    for k in np.unique(image.gt_labels):
      positives[k].append(scale * image.gt_features[image.gt_labels == k])
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
      image = features(image_id)
      if len(image.proposals):
        yield image_id, scale * image.proposal_features, svm.class_overlaps(
            image.proposals, image.gt_boxes, image.gt_labels,
            num_classes)[:, present]

  result = svm.train_svms(positives, batches, settings,
                          svm.SOLVERS[settings.solver], seed=seed)
  for k, positives_k, negatives, primal, evicted in result.last_trainings():
    logging.debug('SVM of class %d: %d positives, %d negatives, primal %.4g, '
                 '%d evicted.', present[k], positives_k, negatives, primal,
                 evicted)
  dim = positives[0].shape[1]
  weights = np.zeros((dim, num_classes), np.float32)
  bias = np.full(num_classes, -np.inf, np.float32)  # never detected
  for k, trained in zip(present, result.svms):
    weights[:, k], bias[k] = trained.weights, trained.bias
  return LinearClassifiers(settings.layer, weights, bias, scale)
