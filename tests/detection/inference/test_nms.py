"""NMS against a brute-force loop written here (its own IoU in Python floats,
its own greedy: walk the boxes by (-score, index) and keep a box unless a kept
box of its class overlaps it by more than the threshold), on random boxes with
score ties, copies, zero-area and reversed boxes; the jitted padded versions
against the host ones, compiled once per shape; hand-computed IoU values."""

import numpy as np
import pytest

from sppnet_jax.core import compile_count
from sppnet_jax.detection.boxes import iou_matrix
from sppnet_jax.detection.inference.nms import (batched_nms, batched_nms_padded,
                                      nms, nms_padded)

THRESHOLDS = (0.0, 0.3, 0.5, 1.0)


def _iou(a, b, plus_one):
  o = 1.0 if plus_one else 0.0
  area_a = max(a[2] - a[0] + o, 0.0) * max(a[3] - a[1] + o, 0.0)
  area_b = max(b[2] - b[0] + o, 0.0) * max(b[3] - b[1] + o, 0.0)
  w = max(min(a[2], b[2]) - max(a[0], b[0]) + o, 0.0)
  h = max(min(a[3], b[3]) - max(a[1], b[1]) + o, 0.0)
  union = area_a + area_b - w * h
  return w * h / union if union > 0 else 0.0


def _brute_force(boxes, scores, threshold, plus_one, classes=None,
                 max_detections=None):
  boxes, scores = boxes.tolist(), scores.tolist()
  classes = [0] * len(boxes) if classes is None else classes.tolist()
  kept = []
  for i in sorted(range(len(boxes)), key=lambda i: (-scores[i], i)):
    if all(classes[k] != classes[i] or
           _iou(boxes[k], boxes[i], plus_one) <= threshold for k in kept):
      kept.append(i)
  return kept if max_detections is None else kept[:max_detections]


def _random_case(seed, n, plus_one, grid=False):
  """Boxes in a 100 x 100 image: random ones, copies of others, zero-area and
  reversed ones; scores with many ties. On `grid` every coordinate is a multiple
  of 0.5, so float32 and float64 IoU decide every threshold alike."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, 80, (n, 2))
  wh = rng.uniform(1, 40, (n, 2))
  boxes = np.concatenate([xy, xy + wh], 1)
  if grid:
    boxes = np.round(boxes * 2) / 2
  o = 1.0 if plus_one else 0.0
  kind = rng.integers(0, 10, n)
  copies = np.flatnonzero(kind == 0)
  boxes[copies] = boxes[rng.integers(0, n, copies.size)]
  flat = kind == 1  # zero width in this convention
  boxes[flat, 2] = boxes[flat, 0] - o
  reversed_ = kind == 2
  boxes[reversed_] = boxes[reversed_][:, [2, 3, 0, 1]]
  scores = np.where(rng.uniform(size=n) < 0.5, rng.integers(0, 4, n) / 4,
                    rng.uniform(size=n))
  return boxes, scores


def test_iou_hand_computed():
  # Two 10 x 10 boxes sharing half: 50 / (100 + 100 - 50).
  np.testing.assert_allclose(iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]]),
                             [[1 / 3]])
  # Pixel-inclusive: (0, 0, 9, 9) is 100 pixels, (5, 0, 14, 9) shares 50.
  np.testing.assert_allclose(
      iou_matrix([[0, 0, 9, 9]], [[5, 0, 14, 9], [0, 0, 4, 9], [0, 0, 9, 9]],
                 plus_one=True), [[1 / 3, 0.5, 1.0]])
  # Touching edges: no overlap when continuous, one shared column of pixels
  # (10 of 190) when inclusive.
  np.testing.assert_allclose(iou_matrix([[0, 0, 10, 10]], [[10, 0, 20, 10]]),
                             [[0.0]])
  np.testing.assert_allclose(
      iou_matrix([[0, 0, 9, 9]], [[9, 0, 18, 9]], plus_one=True), [[10 / 190]])
  # Zero-area and reversed boxes: IoU 0 with everything, themselves included.
  degenerate = [[5, 5, 5, 9], [9, 9, 2, 2]]
  assert not iou_matrix(degenerate, degenerate + [[0, 0, 10, 10]]).any()
  assert not iou_matrix([[5, 5, 4, 9]], [[5, 5, 4, 9], [0, 0, 9, 9]],
                        plus_one=True).any()
  # ... but (5, 5, 5, 9) is one pixel column wide when inclusive.
  np.testing.assert_allclose(
      iou_matrix([[5, 5, 5, 9]], [[5, 5, 5, 9]], plus_one=True), [[1.0]])


def test_threshold_is_strict_and_ties_keep_the_earlier_index():
  boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10.]])
  # IoU(0, 1) = 1/3: kept at threshold 1/3, dropped just below.
  assert nms(boxes[:2], [1.0, 0.5], 1 / 3).tolist() == [0, 1]
  assert nms(boxes[:2], [1.0, 0.5], 0.33).tolist() == [0]
  # Equal scores: the earlier index wins, for copies and in the output order.
  assert nms(boxes, [0.5, 0.5, 0.5], 0.5).tolist() == [0, 1]
  assert nms(boxes, [0.5, 0.5, 0.5], 1.0).tolist() == [0, 1, 2]
  assert nms(boxes, [0.5, 0.9, 0.9], 0.5).tolist() == [1, 2]
  # Zero-area copies are never suppressed, even at threshold 0.
  flat = np.array([[3, 3, 3, 8], [3, 3, 3, 8], [0, 0, 10, 10]])
  assert nms(flat, [0.2, 0.1, 0.3], 0.0).tolist() == [2, 0, 1]
  assert nms(np.zeros((0, 4)), np.zeros(0), 0.3).tolist() == []
  assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int),
                     0.3, 10).tolist() == []


@pytest.mark.parametrize('plus_one', [False, True])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_nms_matches_brute_force(seed, plus_one):
  for n in (1, 7, 300):
    for grid in (False, True):
      boxes, scores = _random_case(seed, n, plus_one, grid)
      for threshold in THRESHOLDS:
        got = nms(boxes, scores, threshold, plus_one=plus_one)
        assert got.dtype == np.int64
        assert got.tolist() == _brute_force(boxes, scores, threshold, plus_one), (
            n, grid, threshold)


@pytest.mark.parametrize('plus_one', [False, True])
@pytest.mark.parametrize('seed', [3, 4])
def test_batched_nms_matches_brute_force(seed, plus_one):
  boxes, scores = _random_case(seed, 300, plus_one)
  classes = np.random.default_rng(seed).integers(0, 4, 300) * 7 - 3
  for threshold in THRESHOLDS:
    for max_detections in (None, 1, 25, 1000):
      got = batched_nms(boxes, scores, classes, threshold, max_detections,
                        plus_one=plus_one)
      assert got.tolist() == _brute_force(boxes, scores, threshold, plus_one,
                                          classes, max_detections), (
                                              threshold, max_detections)
  # Copies in different classes do not suppress each other.
  assert batched_nms(np.tile([[0, 0, 9, 9.]], (3, 1)), [0.1, 0.3, 0.2],
                     [1, 2, 1], 0.5).tolist() == [1, 2]


def test_batched_nms_of_a_detector_matches_brute_force():
  """A detector's shape: 20 classes with very different box counts (one box,
  none kept twice, hundreds), each class's boxes drawn around a few objects
  so that many are suppressed and the classes keep different numbers."""
  rng = np.random.default_rng(7)
  classes = np.concatenate([np.full(count, label) for label, count in
                            enumerate([1, 2, 300, 40, 0, 150] + [25] * 14)])
  centres = rng.uniform(10, 90, (5, 2))[rng.integers(0, 5, len(classes))]
  half = rng.uniform(2, 15, (len(classes), 2))
  boxes = np.concatenate([centres - half, centres + half], 1)
  boxes += rng.normal(0, 3, boxes.shape)
  scores = np.where(rng.uniform(size=len(classes)) < 0.2,
                    rng.integers(0, 3, len(classes)) / 2,
                    rng.uniform(size=len(classes)))
  for threshold in (0.3, 0.7):
    for max_detections in (None, 100):
      got = batched_nms(boxes, scores, classes, threshold, max_detections)
      assert got.tolist() == _brute_force(boxes, scores, threshold, False,
                                          classes, max_detections)


def _check_padded(indices, keep_mask, expected, max_output):
  indices, keep_mask = np.asarray(indices), np.asarray(keep_mask)
  assert indices.shape == keep_mask.shape == (max_output,)
  assert indices.dtype == np.int32 and keep_mask.dtype == bool
  count = min(len(expected), max_output)
  assert keep_mask.tolist() == [True] * count + [False] * (max_output - count)
  assert indices[:count].tolist() == list(expected[:count])
  assert (indices[count:] == -1).all()


def test_padded_versions_match_host_and_compile_once():
  n, padded = 250, 300
  with compile_count.compilations() as compiled:
    first = None
    for seed in range(3):
      for plus_one in (False, True):
        boxes, scores = _random_case(seed + 10, n, plus_one, grid=True)
        scores = scores.astype(np.float32)
        rng = np.random.default_rng(seed)
        classes = rng.integers(0, 3, n)
        # The boxes at increasing positions (ties keep their order), padding
        # between them: copies of box 0 scoring above all, with valid=False.
        at = np.sort(rng.permutation(padded)[:n])
        pad_boxes = np.tile(boxes[:1], (padded, 1)).astype(np.float32)
        pad_boxes[at] = boxes
        pad_scores = np.full(padded, 2.0, np.float32)
        pad_scores[at] = scores
        pad_classes = np.zeros(padded, np.int32)
        pad_classes[at] = classes
        valid = np.zeros(padded, bool)
        valid[at] = True
        for threshold in THRESHOLDS:
          expected = at[_brute_force(boxes, scores, threshold, plus_one)]
          expected_batched = at[_brute_force(boxes, scores, threshold,
                                             plus_one, classes)]
          for max_output in (40, padded):
            _check_padded(*nms_padded(pad_boxes, pad_scores, valid, threshold,
                                      max_output, plus_one=plus_one),
                          expected, max_output)
            _check_padded(*batched_nms_padded(pad_boxes, pad_scores,
                                              pad_classes, valid, threshold,
                                              max_output, plus_one=plus_one),
                          expected_batched, max_output)
      if first is None:
        first = len(compiled)
    # All valid, all invalid.
    _check_padded(*nms_padded(pad_boxes, pad_scores, np.ones(padded, bool),
                              0.3, 40, plus_one=True),
                  nms(pad_boxes, pad_scores, 0.3, plus_one=True), 40)
    _check_padded(*nms_padded(pad_boxes, pad_scores, np.zeros(padded, bool),
                              0.3, 40, plus_one=True), [], 40)
  # One compilation per (function, max_output, plus_one) at most; none for new
  # data or thresholds.
  assert compiled.count('nms_padded') <= 4, compiled
  assert compiled.count('batched_nms_padded') <= 4, compiled
  assert len(compiled) == first, compiled
