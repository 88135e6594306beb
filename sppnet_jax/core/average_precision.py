"""PASCAL VOC's average precision of a precision/recall curve, shared by the
detection AP (`VOCevaldet`, detection/evaluation/voc.py) and the
classification AP (`VOCevalcls`, transfer/voc_ap.py): both
devkit functions end with the same code."""

import numpy as np


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
  """MATLAB's `start:step:stop` for a `stop` that the steps reach, value for
  value: its colon operator computes the first half as start + k * step and
  the second half as stop - k * step (the middle of an even count as
  (start + stop) / 2), so that both ends are exact. 0:0.1:1 thus holds 0.6
  and 0.7 exactly as the literals, where np.arange(0, 1.1, 0.1) holds
  0.6000000000000001 and 0.7000000000000001."""
  n = int(round((stop - start) / step))
  values = np.empty(n + 1)
  k = np.arange(n // 2 + 1)
  values[k] = start + k * step
  values[n - k] = stop - k * step
  if n % 2 == 0:
    values[n // 2] = (start + stop) / 2
  return values


# The devkit's `for t=0:0.1:1`.
ELEVEN_POINTS = matlab_colon(0.0, 0.1, 1.0)


def average_precision(precision: np.ndarray, recall: np.ndarray,
                      use_07_metric: bool = True) -> float:
  """11-point interpolated AP (VOC2007): the mean over recall t = 0:0.1:1 of
  the highest precision at recall >= t (0 where none; the devkit sums p / 11
  instead, which can differ in the last bit: 1.0000000000000002 for a
  perfect ranking); or, with use_07_metric=False, the area under the
  interpolated curve (VOC2010+).

  precision and recall are the curve after each ranked item; NaN precisions
  (no item counted yet) must be given as 0, which equals MATLAB's max
  ignoring NaN whenever any precision is a number. The thresholds are
  MATLAB's (`ELEVEN_POINTS`): a recall of exactly 3/5 reaches t = 0.6 as in
  the devkit (py-faster-rcnn's np.arange thresholds miss it), and one of
  exactly 3/10 does not reach t = 0.30000000000000004 in either."""
  if use_07_metric:
    points = []
    for t in ELEVEN_POINTS:
      above = precision[recall >= t]
      points.append(above.max() if above.size else 0.0)
    return float(np.mean(points))
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))
