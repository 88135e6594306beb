"""VOC classification AP (VOCevalcls) against hand-computed cases and a
line-by-line loop translation of the devkit's MATLAB."""

import math

import numpy as np
import pytest

from sppnet_jax.transfer import voc_ap
from sppnet_jax.errors import DataError
from tests.helpers import MATLAB_0_TO_1


def devkit_loop(scores, gt):
  """VOCevalcls.m written out with loops: stable sort of -out, cumulative
  TP/FP, 11-point AP with MATLAB's max ignoring NaN (0/0 precisions)."""
  order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable
  tp = fp = 0
  prec, rec = [], []
  npos = sum(1 for g in gt if g > 0)
  for i in order:
    tp += gt[i] > 0
    fp += gt[i] < 0
    rec.append(tp / npos)
    prec.append(tp / (tp + fp) if tp + fp else math.nan)
  ap = 0.0
  for t in MATLAB_0_TO_1:
    values = [p for p, r in zip(prec, rec) if r >= t and not math.isnan(p)]
    ap += (max(values) if values else 0.0) / 11
  return ap


def test_hand_computed():
  # Ranks: +, -, +, -: precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1.
  # t = 0..0.5 take 1, t = 0.6..1 take 2/3: (6 + 5 * 2/3) / 11 = 28/33.
  assert voc_ap.voc_cls_ap([0.9, 0.8, 0.7, 0.6], [1, -1, 1, -1]) == (
      pytest.approx(28 / 33, abs=1e-12))


def test_difficult_only_images_are_ignored():
  # A difficult-only image ranked first changes nothing ...
  assert voc_ap.voc_cls_ap([0.95, 0.9, 0.8, 0.7, 0.6], [0, 1, -1, 1, -1]) == (
      pytest.approx(28 / 33, abs=1e-12))
  # ... where as a negative it would: precision 0, 1/2, 1/3, 1/2, 2/5.
  as_negative = voc_ap.voc_cls_ap([0.95, 0.9, 0.8, 0.7, 0.6],
                                  [-1, 1, -1, 1, -1])
  assert as_negative == pytest.approx(
      (6 * 0.5 + 5 * 0.5) / 11, abs=1e-12)  # best precision 1/2 everywhere
  # ... and as a positive it would count in the recall.
  assert voc_ap.voc_cls_ap([0.95, 0.9, 0.8, 0.7, 0.6], [1, 1, -1, 1, -1]) == (
      pytest.approx((7 * 1.0 + 4 * 0.75) / 11, abs=1e-12))  # t <= 0.6: 1


def test_ties_keep_the_test_set_order():
  # Equal scores: the image listed first is ranked first (MATLAB's stable sort).
  assert voc_ap.voc_cls_ap([0.5, 0.5], [-1, 1]) == pytest.approx(0.5)
  assert voc_ap.voc_cls_ap([0.5, 0.5], [1, -1]) == pytest.approx(1.0)


def test_unscored_images_rank_last():
  assert voc_ap.voc_cls_ap([-np.inf, 0.1], [1, -1]) == pytest.approx(0.5)


def test_class_absent_from_the_test_split():
  result = voc_ap.voc_cls_map(
      np.array([[0.9, 0.1], [0.1, 0.3], [0.2, 0.2]]),
      np.array([[1, -1], [-1, 0], [1, -1]]), ('a', 'b'))
  assert math.isnan(result['ap']['b'])
  assert result['classes_without_positives'] == ['b']
  assert result['map'] == pytest.approx(result['ap']['a'])
  assert result['ap']['a'] == pytest.approx(1.0)


def test_matches_the_devkit_loop_on_random_rankings():
  rng = np.random.default_rng(0)
  for _ in range(300):
    n = int(rng.integers(1, 30))
    gt = rng.choice([-1, 0, 1], size=n, p=[0.5, 0.15, 0.35])
    if not (gt > 0).any():
      gt[rng.integers(n)] = 1
    scores = rng.integers(0, 6, size=n).astype(float)  # many ties
    assert voc_ap.voc_cls_ap(scores, gt) == pytest.approx(
        devkit_loop(list(scores), list(gt)), abs=1e-12)


def test_image_labels():
  labels = voc_ap.image_labels([2, 2, 0, 3], [True, False, True, True], 5)
  assert labels.tolist() == [0, -1, 1, 0, -1]
  with pytest.raises(DataError):
    voc_ap.image_labels([5], [False], 5)
