"""PASCAL VOC's average precision of a precision/recall curve, shared by the
detection AP (`VOCevaldet`, detection/evaluation/voc.py) and the
classification AP (`VOCevalcls`, transfer/voc_ap.py): both
devkit functions end with the same code."""

import numpy as np


def average_precision(precision: np.ndarray, recall: np.ndarray,
                      use_07_metric: bool = True) -> float:
  """11-point interpolated AP (VOC2007): the mean over recall t = 0, 0.1,
  ..., 1 of the highest precision at recall >= t (0 where none); or, with
  use_07_metric=False, the area under the interpolated curve (VOC2010+).

  precision and recall are the curve after each ranked item; NaN precisions
  (no item counted yet) must be given as 0, which equals MATLAB's max
  ignoring NaN whenever any precision is a number. The thresholds are
  np.arange(0, 1.1, 0.1), i.e. k * 0.1 in floating point (0.3 is
  0.30000000000000004, so a recall of exactly 3/10 does not reach it), as in
  py-faster-rcnn's voc_eval.py."""
  if use_07_metric:
    points = []
    for t in np.arange(0.0, 1.1, 0.1):
      above = precision[recall >= t]
      points.append(above.max() if above.size else 0.0)
    return float(np.mean(points))
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))
