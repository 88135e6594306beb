"""Box regression against references written here: hand-computed samples and
IoUs, the ridge problem solved as least squares on the augmented system
[A; sqrt(lambda) I] (numpy.linalg.lstsq, neither the primal nor the dual), the
authors' whitened solve re-enacted step by step, and a synthetic problem whose
deltas are a linear function of the features."""

import math

import numpy as np
import pytest

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.training import box_regression as br
from sppnet_jax.detection.training.feature_scale import mean_norm_scale
from sppnet_jax.errors import ConfigError, DataError


def _random_boxes(rng, n):
  yx = rng.uniform(0, 400, (n, 2))
  hw = rng.uniform(5, 300, (n, 2))
  return np.concatenate([yx, yx + hw], 1)


def test_select_samples_hand_case():
  gt = np.array([[0, 0, 10, 10], [0, 20, 10, 40]], np.float32)
  gt_classes = np.array([3, 7])
  boxes = np.array([
      [0, 0, 10, 10],    # 0: gt 0 itself, IoU 1
      [0, 0, 10, 5],     # 1: half of gt 0, IoU exactly 0.5
      [0, 0, 10, 4],     # 2: IoU 0.4 -> dropped
      [0, 22, 10, 40],   # 3: IoU 180 / 200 = 0.9 with gt 1
      [0, 5, 10, 25],    # 4: 50 / 150 with gt 0, 50 / 350 with gt 1 -> dropped
      [100, 100, 110, 110],  # 5: overlaps nothing
      [0, 8, 10, 30],    # 6: 20/220 vs 100/220 -> gt 1, IoU 0.4545 -> dropped
      [0, 10, 10, 40],   # 7: IoU 200 / 300 with gt 1
  ], np.float32)
  s = br.select_samples(boxes, gt, gt_classes, min_iou=0.5)
  np.testing.assert_array_equal(s.indices, [0, 1, 3, 7])
  np.testing.assert_array_equal(s.classes, [3, 3, 7, 7])
  np.testing.assert_allclose(s.iou, [1, 0.5, 0.9, 2 / 3], rtol=1e-6)
  # Deltas to the assigned box, by hand: box 1 is centre (5, 2.5), 10 x 5.
  np.testing.assert_allclose(s.deltas[0], 0, atol=1e-7)
  np.testing.assert_allclose(
      s.deltas[1], [0, (5 - 2.5) / 5, 0, math.log(10 / 5)], rtol=1e-6)
  np.testing.assert_allclose(
      s.deltas[3], [0, (30 - 25) / 30, 0, math.log(20 / 30)], rtol=1e-6)
  # The authors' code keeps IoU > 0.5 only; R-CNN's threshold 0.6.
  strict = br.select_samples(boxes, gt, gt_classes, min_iou=0.5, strict=True)
  np.testing.assert_array_equal(strict.indices, [0, 3, 7])
  np.testing.assert_array_equal(
      br.select_samples(boxes, gt, gt_classes, min_iou=0.6).indices, [0, 3, 7])
  np.testing.assert_array_equal(
      br.select_samples(boxes, gt, gt_classes, min_iou=0.7).indices, [0, 3])


def test_select_samples_ties_and_empty():
  # A box equally close to two ground-truth boxes goes to the first.
  gt = np.array([[0, 0, 10, 10], [0, 10, 10, 20]], np.float32)
  s = br.select_samples([[0, 0, 10, 20]], gt, [4, 9], min_iou=0.5)
  np.testing.assert_array_equal(s.classes, [4])
  empty = br.select_samples(_random_boxes(np.random.default_rng(1), 5),
                            np.zeros((0, 4)), np.zeros(0, np.int64))
  assert empty.indices.shape == (0,) and empty.deltas.shape == (0, 4)
  with pytest.raises(DataError, match='one class per box'):
    br.select_samples([[0, 0, 1, 1]], gt, [1])
  with pytest.raises(ConfigError, match='min_iou'):
    br.select_samples([[0, 0, 1, 1]], gt, [1, 2], min_iou=0)


def test_mean_norm_scale_hand_case():
  # Norms 5 and 10: mean 7.5, scale 20 / 7.5.
  assert mean_norm_scale([[3, 4], [6, 8]]) == pytest.approx(20 / 7.5)
  with pytest.raises(DataError, match='mean norm'):
    mean_norm_scale(np.zeros((3, 4)))


def _reference_ridge(x, y, ridge, scale, regularize_bias):
  """Least squares on [A; sqrt(ridge) P] w = [y; 0], A = [scale x, 1], P the
  penalised coordinates (all, or all but the bias)."""
  n, dim = x.shape
  a = np.concatenate([scale * x.astype(np.float64), np.ones((n, 1))], 1)
  penalty = np.sqrt(ridge) * np.eye(dim + 1)
  if not regularize_bias:
    penalty = penalty[:dim]
  big_a = np.concatenate([a, penalty], 0)
  big_y = np.concatenate([y, np.zeros((penalty.shape[0], y.shape[1]))], 0)
  return np.linalg.lstsq(big_a, big_y, rcond=None)[0]


def _problem(rng, counts, dim):
  classes = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
  rng.shuffle(classes)
  features = np.maximum(rng.normal(size=(classes.size, dim)), 0).astype(
      np.float32)
  deltas = rng.normal(0.1, 0.3, (classes.size, 4))
  return features, deltas, classes


@pytest.mark.parametrize('solver', ['auto', 'primal', 'dual'])
@pytest.mark.parametrize('regularize_bias', [True, False])
@pytest.mark.parametrize('center', [True, False])
def test_fit_matches_augmented_least_squares(regularize_bias, center, solver):
  rng = np.random.default_rng(2)
  dim = 30
  # With 'auto', class 0 is solved in the dual (N < D + 1), class 1 in the
  # primal (N > D + 1, in chunks of 7 rows), class 3 (exactly D + 1) in the
  # primal; class 2 has no samples. 'primal' and 'dual' force one for all.
  features, deltas, classes = _problem(rng, [12, 90, 0, dim + 1], dim)
  scale, ridge = 0.37, 3.0
  model = br.fit(features, deltas, classes, num_classes=4, ridge=ridge,
                 feature_scale=scale, regularize_bias=regularize_bias,
                 center_targets=center, solver=solver, chunk=7)
  np.testing.assert_array_equal(model.num_samples, [12, 90, 0, dim + 1])
  test_x = np.maximum(rng.normal(size=(25, dim)), 0)
  for c in (0, 1, 3):
    rows = classes == c
    mu = deltas[rows].mean(0) if center else np.zeros(4)
    w = _reference_ridge(features[rows], deltas[rows] - mu, ridge, scale,
                         regularize_bias)
    expected = np.concatenate([scale * test_x, np.ones((25, 1))], 1) @ w + mu
    got = model(test_x, np.full(25, c))
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
  # No samples: zero deltas, so decoding leaves the boxes where they were.
  np.testing.assert_array_equal(model.weights[2], 0)
  boxes = _random_boxes(rng, 25)
  np.testing.assert_allclose(
      box_lib.decode_deltas(boxes, model(test_x, np.full(25, 2))), boxes,
      rtol=0, atol=1e-12)


def test_fit_matches_the_authors_whitened_solve():
  """`spp_train_bbox_regressor.m` step by step: targets centred and whitened
  with T = V diag(1 / sqrt(D + 0.001)) V', one Cholesky ridge solve per
  column on [X, 1] with the bias penalised, prediction times T^-1 plus mu."""
  rng = np.random.default_rng(3)
  dim = 20
  for n in (9, 60):  # dual and primal sizes
    features, deltas, classes = _problem(rng, [n], dim)
    norms = np.linalg.norm(features.astype(np.float64), axis=1)
    scale = 20 / norms.mean()
    ridge = 50.0
    x = np.concatenate([features * scale, np.ones((n, 1))], 1)
    mu = deltas.mean(0)
    centred = deltas - mu
    evals, evecs = np.linalg.eigh(centred.T @ centred / n)
    t = evecs @ np.diag(1 / np.sqrt(evals + 0.001)) @ evecs.T
    t_inv = evecs @ np.diag(np.sqrt(evals + 0.001)) @ evecs.T
    beta = np.linalg.solve(x.T @ x + ridge * np.eye(dim + 1),
                           x.T @ (centred @ t))
    test_x = np.maximum(rng.normal(size=(10, dim)), 0)
    test_a = np.concatenate([test_x * scale, np.ones((10, 1))], 1)
    expected = test_a @ beta @ t_inv + mu
    model = br.fit(features, deltas, classes, 1, ridge=ridge)  # default scale
    assert model.feature_scale == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(model(test_x, np.zeros(10, int)),
                               expected, rtol=1e-6, atol=1e-8)


def test_linear_deltas_are_recovered():
  """Deltas that are an exact affine function of the features, per class, are
  recovered on unseen features when the penalty is negligible."""
  rng = np.random.default_rng(4)
  dim = 16
  true_w = rng.normal(0, 0.05, (2, dim, 4))
  true_b = rng.normal(0, 0.2, (2, 4))
  features, _, classes = _problem(rng, [200, 150], dim)
  deltas = np.einsum('nd,ndk->nk', features.astype(np.float64),
                     true_w[classes]) + true_b[classes]
  model = br.fit(features, deltas, classes, 2, ridge=1e-8)
  test_x = np.maximum(rng.normal(size=(40, dim)), 0)
  test_c = rng.integers(0, 2, 40)
  expected = np.einsum('nd,ndk->nk', test_x, true_w[test_c]) + true_b[test_c]
  np.testing.assert_allclose(model(test_x, test_c), expected,
                             atol=1e-6)
  np.testing.assert_allclose(model.weights[:, :dim], true_w, atol=1e-6)
  np.testing.assert_allclose(model.weights[:, dim], true_b, atol=1e-6)


def test_samples_to_refined_boxes_end_to_end():
  """Proposals jittered around ground-truth boxes, features that carry the
  jitter linearly: selection, fit and decode move held-out proposals onto
  their ground truth."""
  rng = np.random.default_rng(5)

  def image(n_boxes):
    gt = _random_boxes(rng, 2) + 50
    offsets = rng.normal(0, 0.08, (n_boxes, 4))
    owner = rng.integers(0, 2, n_boxes)
    g = gt[owner]
    h, w = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    proposals = g + offsets * np.stack([h, w, h, w], 1)
    return gt, proposals

  feats, targets, classes = [], [], []
  for _ in range(20):
    gt, proposals = image(40)
    s = br.select_samples(proposals, gt, [0, 1])
    # Features: the true deltas in a random linear mix, plus a constant.
    feats.append(np.concatenate([s.deltas, np.ones((len(s.indices), 1))], 1))
    targets.append(s.deltas)
    classes.append(s.classes)
  mix = rng.normal(size=(5, 12))
  model = br.fit(np.concatenate(feats) @ mix, np.concatenate(targets),
                 np.concatenate(classes), 2, ridge=1e-8)
  gt, proposals = image(30)
  s = br.select_samples(proposals, gt, [0, 1])
  x = np.concatenate([s.deltas, np.ones((len(s.indices), 1))], 1) @ mix
  refined = box_lib.decode_deltas(proposals[s.indices], model(x, s.classes))
  best = np.argmin([[np.abs(p - g).sum() for g in gt] for p in
                    proposals[s.indices]], axis=1)
  np.testing.assert_allclose(refined, gt[best], atol=1e-4)


def test_fit_and_predict_reject_bad_input():
  x, y, c = np.ones((4, 3)), np.zeros((4, 4)), np.array([0, 1, 1, 0])
  with pytest.raises(DataError, match='outside'):
    br.fit(x, y, c, num_classes=1)
  with pytest.raises(ConfigError, match='ridge'):
    br.fit(x, y, c, num_classes=2, ridge=0)
  with pytest.raises(ConfigError, match='solver'):
    br.fit(x, y, c, num_classes=2, solver='qr')
  with pytest.raises(DataError, match='deltas'):
    br.fit(x, y[:3], c, num_classes=2)
  bad = x.copy()
  bad[1, 1] = np.nan
  with pytest.raises(DataError, match='finite'):
    br.fit(bad, y, c, num_classes=2)
  model = br.fit(x, y, c, num_classes=2)
  with pytest.raises(DataError, match=r'\(N, 3\)'):
    model(np.ones((2, 5)), [0, 1])
  with pytest.raises(DataError, match='outside'):
    model(np.ones((2, 3)), [0, 2])
