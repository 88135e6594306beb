"""The detector's selection of detections (per-class top-k, NMS, top per
image) against a brute-force reference, and its linear classifiers."""

import numpy as np

from sppnet_jax.detection.inference import detector
from sppnet_jax.detection.inference.linear_models import LinearClassifiers


def _iou(a, b):
  h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = h * w
  union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
           - inter)
  return inter / union if union > 0 else 0.0


def _reference(boxes, scores, nms_iou, pre, top):
  found = []
  for k in range(scores.shape[1]):
    order = sorted(range(len(boxes)), key=lambda r: (-scores[r, k], r))[:pre]
    kept = []
    for r in order:
      if all(_iou(boxes[r], boxes[q]) <= nms_iou for q in kept):
        kept.append(r)
    found += [(scores[r, k], k, r) for r in kept]
  found.sort(key=lambda t: -t[0])
  return found[:top]


def test_select_matches_brute_force():
  rng = np.random.default_rng(0)
  for trial in range(20):
    n, k = rng.integers(1, 40), rng.integers(1, 5)
    y0, x0 = rng.uniform(0, 50, (2, n))
    boxes = np.stack([y0, x0, y0 + rng.uniform(1, 30, n),
                      x0 + rng.uniform(1, 30, n)], 1).astype(np.float32)
    scores = rng.random((n, k)).astype(np.float32)
    pre, top = int(rng.integers(1, 20)), int(rng.integers(1, 30))
    rows, classes = detector.select(boxes, scores, 0.3, pre, top)
    want = _reference(boxes, scores, 0.3, pre, top)
    assert [(int(r), int(c)) for r, c in zip(rows, classes)] == [
        (r, c) for _, c, r in want], trial


def test_linear_classifiers_scale_then_score(tmp_path):
  weights = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
  bias = np.array([0.25, 1.0], np.float32)
  model = LinearClassifiers('fc7', weights, bias, 2.0)
  x = np.array([[1.0, 2.0]], np.float32)
  # 2 * [1, 2] = [2, 4]; [2 + 2, -4] + bias.
  np.testing.assert_allclose(model(x), [[4.25, -3.0]])
  model.save(str(tmp_path / 'svm.npz'))
  back = LinearClassifiers.load(str(tmp_path / 'svm.npz'))
  assert back.layer == 'fc7' and back.feature_scale == 2.0
  np.testing.assert_array_equal(back.weights, weights)
