"""The detector's selection of detections (per-class top-k, NMS, top per
image) against a brute-force reference, on the host and with fixed shapes
(`select_padded`, the exported detector's), and its linear models."""

import jax
import numpy as np

from sppnet_jax.detection.inference import detector
from sppnet_jax.detection.inference.linear_models import (BoxRegressor,
                                                          LinearClassifiers,
                                                          predict)


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


def test_select_padded_matches_select_and_brute_force():
  rng = np.random.default_rng(1)
  fixed = jax.jit(detector.select_padded, static_argnums=(3, 4, 5))
  for trial in range(20):
    n, k, pad = rng.integers(1, 40), rng.integers(1, 5), rng.integers(0, 9)
    y0, x0 = rng.uniform(0, 50, (2, n))
    boxes = np.stack([y0, x0, y0 + rng.uniform(1, 30, n),
                      x0 + rng.uniform(1, 30, n)], 1).astype(np.float32)
    scores = rng.random((n, k)).astype(np.float32)
    if trial % 3 == 0:
      scores[:, 0] = -np.inf  # a class without a model
    scores[rng.random((n, k)) < 0.2] = 0.5  # ties
    pre, top = int(rng.integers(1, 20)), int(rng.integers(1, 30))
    padded_boxes = np.concatenate([boxes, rng.uniform(0, 50, (pad, 4))])
    padded_scores = np.concatenate([scores, np.full((pad, k), 2.0)])
    valid = np.arange(n + pad) < n
    rows, classes, kept = (np.asarray(a) for a in fixed(
        padded_boxes.astype(np.float32), padded_scores.astype(np.float32),
        valid, 0.3, pre, top))
    want_rows, want_classes = detector.select(boxes, scores, 0.3, pre, top)
    count = int(kept.sum())
    assert kept[:count].all() and not kept[count:].any()
    np.testing.assert_array_equal(rows[:count], want_rows, err_msg=str(trial))
    np.testing.assert_array_equal(classes[:count], want_classes)
    assert not rows[count:].any() and not classes[count:].any()
    finite = np.isfinite(scores)
    want = [(r, c) for _, c, r in _reference(
        boxes, np.where(finite, scores, -1e9), 0.3, pre, top) if finite[r, c]]
    assert [(int(r), int(c)) for r, c in zip(rows[:count],
                                             classes[:count])] == want


def test_regressor_in_jax_equals_the_host_one():
  rng = np.random.default_rng(2)
  model = BoxRegressor(rng.normal(size=(3, 7, 4)), np.ones(3), 1.0, 1.0)
  features = rng.normal(size=(9, 6)).astype(np.float32)
  classes = rng.integers(0, 3, 9)
  np.testing.assert_allclose(
      np.asarray(predict(model, jax.numpy.asarray(features), classes)),
      predict(model, features, classes), rtol=1e-5, atol=1e-5)


def test_linear_classifiers_scale_then_score(tmp_path):
  weights = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
  bias = np.array([0.25, 1.0], np.float32)
  model = LinearClassifiers('fc7', weights, bias, 2.0)
  x = np.array([[1.0, 2.0]], np.float32)
  # 2 * [1, 2] = [2, 4]; [2 + 2, -4] + bias.
  np.testing.assert_allclose(model(x), [[4.25, -3.0]])
  np.testing.assert_allclose(np.asarray(model(jax.numpy.asarray(x))),
                             [[4.25, -3.0]])
  model.save(str(tmp_path / 'svm.npz'))
  back = LinearClassifiers.load(str(tmp_path / 'svm.npz'))
  assert back.layer == 'fc7' and back.feature_scale == 2.0
  np.testing.assert_array_equal(back.weights, weights)
