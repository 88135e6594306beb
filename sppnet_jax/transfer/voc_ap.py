"""PASCAL VOC classification AP, exactly as the VOC devkit's `VOCevalcls.m`
(VOC2007) computes it, per class:

* each test image has a ground truth for the class: 1 (it has a
  non-difficult object of the class), 0 (its only objects of the class are
  difficult) or -1 (no object of the class), the devkit's
  `ImageSets/Main/<class>_test.txt` (`image_labels` derives it from objects);
* images are ranked by descending score, a stable sort (MATLAB's `sort`):
  equal scores keep the test set's order; an image given no score is ranked
  last (the devkit's -inf);
* an image of ground truth 1 is a true positive, -1 a false positive, 0
  neither (it still takes its place in the ranking);
* recall = TP / (images of ground truth 1), precision = TP / (TP + FP);
* AP: the 11-point interpolation of VOC2007 (`core.average_precision`, the
  code `VOCevaldet` ends with too).

A class with no image of ground truth 1 in the test split has no AP here (NaN)
and is left out of the mAP (`voc_cls_map` names it). The devkit would report 0
for it (its recall is 0/0, compared false with every threshold): a score that
no classifier could change, so it is not averaged in.
"""

from typing import Sequence

import numpy as np

from sppnet_jax.core.average_precision import average_precision
from sppnet_jax.errors import DataError


def image_labels(labels, difficult, num_classes: int) -> np.ndarray:
  """(num_classes,) int8 ground truth of one image from its objects' labels
  and difficult flags: 1, 0 (only difficult objects of the class) or -1."""
  labels = np.asarray(labels, np.int64).reshape(-1)
  difficult = np.asarray(difficult, bool).reshape(-1)
  if labels.shape != difficult.shape:
    raise DataError(f'{labels.size} object labels but {difficult.size} '
                    'difficult flags: give one flag per object')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(f'object labels {sorted(set(labels.tolist()))} outside '
                    f'0..{num_classes - 1}')
  out = np.full(num_classes, -1, np.int8)
  out[labels[difficult]] = 0
  out[labels[~difficult]] = 1
  return out


def precision_recall(scores, ground_truth) -> tuple[np.ndarray, np.ndarray, int]:
  """(precision, recall, number of images of ground truth 1) after each image
  in rank order (module docstring); precision is 0 where TP + FP = 0."""
  scores = np.asarray(scores, np.float64).reshape(-1)
  ground_truth = np.asarray(ground_truth).reshape(-1)
  if scores.shape != ground_truth.shape:
    raise DataError(f'{scores.size} scores for {ground_truth.size} images: '
                    'give one score per test image')
  if not np.isin(ground_truth, (-1, 0, 1)).all():
    raise DataError('VOC classification ground truth is 1, 0 or -1 per image')
  if np.isnan(scores).any():
    raise DataError('a classification score is NaN; check the features')
  order = np.argsort(-scores, kind='stable')
  ranked = ground_truth[order]
  tp = np.cumsum(ranked > 0)
  fp = np.cumsum(ranked < 0)
  positives = int(np.sum(ground_truth > 0))
  with np.errstate(invalid='ignore', divide='ignore'):
    recall = tp / positives if positives else np.full(len(tp), np.nan)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
  return precision, recall, positives


def voc_cls_ap(scores, ground_truth) -> float:
  """The VOC2007 classification AP of one class: `scores` (N,) of the test
  images, `ground_truth` (N,) 1 / 0 / -1 in the test set's order; NaN when no
  image has ground truth 1."""
  precision, recall, positives = precision_recall(scores, ground_truth)
  if not positives:
    return float('nan')
  return average_precision(precision, recall, use_07_metric=True)


def voc_cls_map(scores, ground_truth, class_names: Sequence[str]) -> dict:
  """{'map', 'ap': {class: AP}, 'classes_without_positives': [...]} for
  (N, K) scores and (N, K) ground truth; the mAP averages the classes that
  have an AP."""
  scores = np.asarray(scores, np.float64)
  ground_truth = np.asarray(ground_truth)
  if scores.shape != ground_truth.shape or scores.shape[1:] != (
      len(class_names),):
    raise DataError(f'scores {scores.shape} and ground truth '
                    f'{ground_truth.shape} must both be (images, '
                    f'{len(class_names)})')
  aps = {name: voc_cls_ap(scores[:, k], ground_truth[:, k])
         for k, name in enumerate(class_names)}
  scored = [ap for ap in aps.values() if not np.isnan(ap)]
  return {'map': float(np.mean(scored)) if scored else float('nan'),
          'ap': aps,
          'classes_without_positives': [n for n, ap in aps.items()
                                        if np.isnan(ap)]}
