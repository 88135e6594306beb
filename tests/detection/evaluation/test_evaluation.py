"""VOC AP on hand-computed cases and against an independent implementation of the
devkit's VOCevaldet.m written here (pure Python: its own IoU, sort and curve)."""

import math

import numpy as np
import pytest

from sppnet_jax.detection.evaluation import coco_ap, voc_ap, voc_map
from tests.helpers import MATLAB_0_TO_1

GT_A = {'a': (np.array([[1, 1, 10, 10], [21, 21, 30, 30]]), np.array([False, False]))}


def test_three_detections_eleven_point_and_area():
  # d1 hits box 1 (TP), d2 misses (FP), d3 hits box 2 (TP): precision 1, 1/2,
  # 2/3 at recall 1/2, 1/2, 1. 11-point: 1 at t = 0..0.5 (6 points), 2/3 at
  # t = 0.6..1 (5 points); area: 1/2 * 1 + 1/2 * 2/3.
  dets = [('a', 0.9, 1, 1, 10, 10), ('a', 0.8, 50, 50, 60, 60),
          ('a', 0.7, 21, 21, 30, 30)]
  assert voc_ap(dets, GT_A) == pytest.approx((6 + 5 * 2 / 3) / 11)
  assert voc_ap(dets, GT_A, use_07_metric=False) == pytest.approx(0.5 + 1 / 3)


def test_the_plus_one_pixel_convention_and_the_threshold_is_inclusive():
  # (1,1,10,10) has 100 pixels, (1,1,10,20) 200; they share 100: IoU exactly 0.5.
  gt = {'a': (np.array([[1, 1, 10, 20]]), np.array([False]))}
  assert voc_ap([('a', 1.0, 1, 1, 10, 10)], gt) == 1.0
  assert voc_ap([('a', 1.0, 1, 1, 10, 10)], gt, iou_threshold=0.51) == 0.0


def test_difficult_objects_are_neither_true_nor_false_positives():
  gt = {'a': (np.array([[1, 1, 10, 10], [21, 21, 30, 30]]), np.array([True, False]))}
  # The detection on the difficult box is ignored; the other is a TP: recall
  # 1/1 (the difficult box is not counted), precision 1.
  dets = [('a', 0.9, 1, 1, 10, 10), ('a', 0.8, 21, 21, 30, 30)]
  assert voc_ap(dets, gt) == 1.0
  # Only the difficult one: nothing to find, no AP.
  only = {'a': (np.array([[1, 1, 10, 10]]), np.array([True]))}
  assert math.isnan(voc_ap(dets, only))


def test_duplicates_are_false_positives():
  # d2 is a second hit on box 1: FP. precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
  dets = [('a', 0.9, 1, 1, 10, 10), ('a', 0.8, 2, 2, 10, 10),
          ('a', 0.7, 21, 21, 30, 30)]
  assert voc_ap(dets, GT_A) == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_a_detection_overlapping_two_boxes_takes_the_best_one_only():
  # Boxes (1,1,10,10) and (1,6,10,15); d spans (1,3,10,12): 80 pixels shared
  # with each (IoU 80 / 120 = 2/3 both): the first box is its best. A second
  # detection equal to the first box has it as its best too: a duplicate, even
  # though it overlaps the free second box by 50 / 150 < 0.5 anyway.
  gt = {'a': (np.array([[1, 1, 10, 10], [1, 6, 10, 15]]), np.array([False, False]))}
  dets = [('a', 0.9, 1, 3, 10, 12), ('a', 0.8, 1, 1, 10, 10)]
  # TP then FP: precision 1, 1/2 at recall 1/2, 1/2: 11-point = 6/11.
  assert voc_ap(dets, gt) == pytest.approx(6 / 11)
  # Its best box is already taken: the devkit counts the detection as a duplicate
  # even when another box it overlaps >= 0.5 is free.
  gt2 = {'a': (np.array([[1, 1, 10, 10], [1, 1, 10, 11]]), np.array([False, False]))}
  dets2 = [('a', 0.9, 1, 1, 10, 10), ('a', 0.8, 1, 1, 10, 10)]
  assert voc_ap(dets2, gt2) == pytest.approx(6 / 11)


def test_empty_classes_and_no_detections():
  assert voc_ap([], GT_A) == 0.0
  assert math.isnan(voc_ap([('a', 1.0, 1, 1, 5, 5)], {}))
  result = voc_map({'cat': [('a', 0.9, 1, 1, 10, 10)]},
                   {'cat': GT_A, 'dog': {}, 'cow': GT_A})
  assert result['ap']['cow'] == 0.0 and math.isnan(result['ap']['dog'])
  assert result['classes_without_boxes'] == ['dog']
  assert result['map'] == pytest.approx((voc_ap([('a', 0.9, 1, 1, 10, 10)], GT_A)
                                         + 0.0) / 2)


def test_ties_keep_the_input_order():
  # Equal scores: the FP listed first is ranked first: precision 0, 1/2.
  first_fp = [('a', 0.5, 50, 50, 60, 60), ('a', 0.5, 1, 1, 10, 10)]
  first_tp = first_fp[::-1]
  gt = {'a': (np.array([[1, 1, 10, 10]]), np.array([False]))}
  assert voc_ap(first_fp, gt) == pytest.approx(0.5)
  assert voc_ap(first_tp, gt) == 1.0


def _reference_ap(dets, gt, threshold, use_07):
  """VOCevaldet.m transcribed with plain Python lists."""
  npos = sum(1 for boxes, diff in gt.values() for d in diff if not d)
  detected = {k: [False] * len(v[0]) for k, v in gt.items()}
  order = sorted(range(len(dets)), key=lambda i: -dets[i][1])
  tp, fp = [], []
  for i in order:
    image, bb = dets[i][0], dets[i][2:]
    ovmax, jmax = -math.inf, -1
    boxes, diff = gt.get(image, ([], []))
    for j, g in enumerate(boxes):
      iw = min(bb[2], g[2]) - max(bb[0], g[0]) + 1
      ih = min(bb[3], g[3]) - max(bb[1], g[1]) + 1
      if iw > 0 and ih > 0:
        ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
              + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih)
        ov = iw * ih / ua
        if ov > ovmax:
          ovmax, jmax = ov, j
    if ovmax >= threshold:
      if diff[jmax]:
        tp.append(0), fp.append(0)
      elif not detected[image][jmax]:
        detected[image][jmax] = True
        tp.append(1), fp.append(0)
      else:
        tp.append(0), fp.append(1)
    else:
      tp.append(0), fp.append(1)
  ctp = np.cumsum(tp)
  cfp = np.cumsum(fp)
  rec = [t / npos for t in ctp]
  prec = [t / (t + f) if t + f else 0.0 for t, f in zip(ctp, cfp)]
  if use_07:
    total = 0.0
    for t in MATLAB_0_TO_1:
      p = [pr for pr, r in zip(prec, rec) if r >= t]
      total += (max(p) if p else 0.0) / 11
    return total
  mrec, mpre = [0.0] + rec + [1.0], [0.0] + prec + [0.0]
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec))
             if mrec[i] != mrec[i - 1])


@pytest.mark.parametrize('seed', range(6))
def test_agrees_with_an_independent_implementation_on_random_detections(seed):
  rng = np.random.default_rng(seed)
  gt, dets = {}, []
  for image in range(12):
    count = rng.integers(0, 5)
    x0, y0 = rng.integers(1, 300, (2, count))
    boxes = np.stack([x0, y0, x0 + rng.integers(5, 80, count),
                      y0 + rng.integers(5, 80, count)], 1)
    gt[f'{image:06d}'] = (boxes.tolist(), (rng.random(count) < 0.2).tolist())
    for box in boxes:  # noisy hits, several per box
      for _ in range(rng.integers(0, 3)):
        jitter = rng.integers(-8, 9, 4)
        dets.append((f'{image:06d}', float(rng.integers(0, 20)) / 20,
                     *(box + jitter).tolist()))
    for _ in range(rng.integers(0, 4)):  # pure false positives
      x, y = rng.integers(1, 350, 2)
      dets.append((f'{image:06d}', float(rng.random()), x, y, x + 30, y + 30))
  gt_arrays = {k: (np.array(b).reshape(-1, 4), np.array(d, bool))
               for k, (b, d) in gt.items()}
  for use_07 in (True, False):
    for threshold in (0.5, 0.7):
      expected = _reference_ap(dets, gt, threshold, use_07)
      assert voc_ap(dets, gt_arrays, threshold, use_07) == pytest.approx(
          expected, abs=1e-12)


def test_coco_ap_through_pycocotools():
  gt = {'cat': {'a': (np.array([[1, 1, 10, 10]]), np.array([False]))},
        'dog': {'b': (np.array([[5, 5, 40, 40]]), np.array([False]))}}
  exact = {'cat': [('a', 0.9, 1, 1, 10, 10)], 'dog': [('b', 0.8, 5, 5, 40, 40)]}
  assert coco_ap(exact, gt) == pytest.approx({'ap': 1.0, 'ap50': 1.0, 'ap75': 1.0})
  # A false positive ranked above each hit: precision 1/2 at recall 1, at every
  # IoU threshold.
  with_fp = {name: [(rows[0][0], 0.95, 100, 100, 120, 120)] + rows
             for name, rows in exact.items()}
  assert coco_ap(with_fp, gt) == pytest.approx({'ap': 0.5, 'ap50': 0.5, 'ap75': 0.5})
  # A hit with VOC IoU 2/3 (the +1 convention carried over): a match at 0.5,
  # none at 0.75; AP@[.5:.95] counts 4 of its 10 thresholds (0.50 to 0.65).
  shifted = {'cat': [('a', 0.9, 1, 1, 10, 10)], 'dog': []}
  one = {'cat': {'a': (np.array([[1, 1, 10, 15]]), np.array([False]))}}
  # |(1,1,10,10)| = 100, |(1,1,10,15)| = 150, shared 100: IoU 100/150 = 2/3.
  result = coco_ap(shifted, one)
  assert result['ap50'] == pytest.approx(1.0) and result['ap75'] == 0.0
  assert result['ap'] == pytest.approx(0.4)
  # A detection on a difficult box is ignored, as VOC ignores it.
  hard = {'cat': {'a': (np.array([[1, 1, 10, 10], [50, 50, 60, 60]]),
                        np.array([False, True]))}}
  dets = {'cat': [('a', 0.9, 50, 50, 60, 60), ('a', 0.8, 1, 1, 10, 10)]}
  assert coco_ap(dets, hard)['ap'] == pytest.approx(1.0)
  assert voc_ap(dets['cat'], hard['cat']) == 1.0
