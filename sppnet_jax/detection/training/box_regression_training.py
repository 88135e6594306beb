"""The box-regression stage: per-class ridge regressors (`box_regression.fit`)
on the pooled conv5 of the training split's proposals that overlap a
ground-truth box (`box_regression.select_samples`), read image by image from
the cached maps.
"""

from __future__ import annotations

import numpy as np

from sppnet_jax.detection.features.cache import Conv5Store
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.inference.linear_models import BoxRegressor
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.training import box_regression
from sppnet_jax.detection.training.region_features import (ground_truth,
                                                            layer_features)
from sppnet_jax.errors import DataError


def train_box_regressor(detector: Detector, store: Conv5Store,
                        proposal_store: ProposalStore, settings, *,
                        use_difficult: bool,
                        num_classes: int) -> BoxRegressor:
  """Per-class ridge regressors on the pooled conv5 of the proposals that
  overlap a ground-truth box by `settings.min_iou` (`settings`: the config's
  `bbox_regression` section)."""
  features, deltas, classes = [], [], []
  for image_id in store.image_ids():
    cached = store.load(image_id)
    proposals = proposal_store.load(image_id, (cached.height, cached.width))
    gt_boxes, gt_labels = ground_truth(cached, use_difficult)
    samples = box_regression.select_samples(proposals, gt_boxes, gt_labels,
                                            settings.min_iou)
    if not len(samples.indices):
      continue
    features.append(layer_features(detector, cached,
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
