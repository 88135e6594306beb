"""Linear SVMs and hard-negative mining against independent references: the
dual solved by scipy's L-BFGS-B (box constraints) written here, the KKT
conditions and the primal-dual gap computed here in float64, a two-point
problem solved by hand (positive weight and bias multiplier), and the mining
loop driven by a fake solver whose scores are the features themselves, so
which negatives are added and evicted is known by hand."""

import numpy as np
import pytest
from scipy.optimize import minimize

from sppnet_jax.detection.config import base_config
from sppnet_jax.detection.training import svm
from sppnet_jax.errors import DataError


def _problem(n=120, d=8, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = np.where(x[:, 0] + 0.5 * rng.normal(size=n) > 0.3, 1.0, -1.0)
  return x, y


def _dual_reference(x, y, c, w_pos, b_mult):
  """Box-constrained dual by L-BFGS-B -> (w, b)."""
  xa = np.hstack([x.astype(np.float64), np.full((len(y), 1), b_mult)])
  z = xa * y[:, None]
  upper = np.where(y > 0, c * w_pos, c)

  def f(a):
    w = z.T @ a
    return 0.5 * w @ w - a.sum(), z @ w - 1

  r = minimize(f, np.zeros(len(y)), jac=True, method='L-BFGS-B',
               bounds=list(zip(np.zeros(len(y)), upper)),
               options=dict(ftol=1e-15, gtol=1e-12, maxiter=20000))
  w = z.T @ r.x
  return w[:-1], w[-1] * b_mult


@pytest.mark.parametrize('c, w_pos, b_mult', [(0.5, 2.0, 3.0), (0.05, 1.0, 1.0)])
def test_matches_scipy_dual(c, w_pos, b_mult):
  x, y = _problem()
  sol = svm.solve_svm(x, y, c=c, positive_weight=w_pos,
                      bias_multiplier=b_mult, tol=1e-6)
  w_ref, b_ref = _dual_reference(x, y, c, w_pos, b_mult)
  np.testing.assert_allclose(sol.svm.weights, w_ref, atol=1e-4)
  assert abs(sol.svm.bias - b_ref) < 1e-4


def test_kkt_and_gap():
  x, y = _problem(n=300, d=12, seed=1)
  c, w_pos, b_mult, tol = 0.2, 2.0, 3.0, 1e-4
  sol = svm.solve_svm(x, y, c=c, positive_weight=w_pos,
                      bias_multiplier=b_mult, tol=tol, max_rounds=1000)
  assert sol.violation <= tol
  upper = np.where(y > 0, c * w_pos, c)
  a = sol.alpha
  assert np.all(a >= 0) and np.all(a <= upper)
  # w = sum a_i y_i x_i and b = B * sum a_i y_i B.
  np.testing.assert_allclose(sol.svm.weights, (a * y) @ x.astype(np.float64),
                             atol=1e-5)
  assert abs(sol.svm.bias - b_mult ** 2 * np.sum(a * y)) < 1e-5
  m = y * (x.astype(np.float64) @ sol.svm.weights + sol.svm.bias)
  free = (a > 1e-9) & (a < upper - 1e-9)
  assert np.all(m[a <= 1e-9] >= 1 - 1e-3)
  assert np.all(m[a >= upper - 1e-9] <= 1 + 1e-3)
  np.testing.assert_allclose(m[free], 1, atol=1e-3)
  # Gap computed here in float64, not the solver's own numbers.
  w, b = sol.svm.weights.astype(np.float64), sol.svm.bias
  reg = 0.5 * (w @ w + (b / b_mult) ** 2)
  primal = reg + np.sum(upper * np.maximum(0, 1 - m))
  dual = a.sum() - reg
  assert 0 <= primal - dual < 1e-4 * primal
  assert abs(primal - sol.primal) < 1e-6 * primal


@pytest.mark.parametrize('w_pos, b_mult', [(2.0, 10.0), (1.0, 10.0),
                                           (2.0, 1.0)])
def test_two_points_by_hand(w_pos, b_mult):
  # x = +1 (positive), x = -1 (negative), C tiny: both duals sit at their
  # bounds, w = C w_pos + C and b = B^2 (C w_pos - C).
  c = 1e-3
  sol = svm.solve_svm(np.array([[1.0], [-1.0]], np.float32), [1, -1], c=c,
                      positive_weight=w_pos, bias_multiplier=b_mult, tol=1e-9)
  np.testing.assert_allclose(sol.alpha, [c * w_pos, c], rtol=1e-6)
  np.testing.assert_allclose(sol.svm.weights, [c * w_pos + c], rtol=1e-5)
  np.testing.assert_allclose(sol.svm.bias, b_mult ** 2 * c * (w_pos - 1),
                             rtol=1e-5, atol=1e-9)


def test_deterministic():
  x, y = _problem(n=200, seed=3)
  a = svm.solve_svm(x, y, c=0.3, tol=1e-4, seed=5)
  b = svm.solve_svm(x, y, c=0.3, tol=1e-4, seed=5)
  np.testing.assert_array_equal(a.svm.weights, b.svm.weights)
  np.testing.assert_array_equal(a.alpha, b.alpha)
  assert a.svm.bias == b.svm.bias


def test_bad_input_is_a_data_error():
  with pytest.raises(DataError):
    svm.solve_svm(np.zeros((3, 2), np.float32), [1, -1])
  with pytest.raises(DataError):
    svm.solve_svm(np.full((2, 2), np.nan, np.float32), [1, -1])


def test_score():
  f = np.array([[3.0, 4.0], [0.0, 10.0]])
  svms = [svm.LinearSvm(np.array([1.0, 2.0], np.float32), 0.5),
          svm.LinearSvm(np.array([0.0, -1.0], np.float32), -1.0)]
  np.testing.assert_allclose(svm.decision_values(svms, f), [[11.5, -5.0], [20.5, -11.0]])


def test_class_overlaps():
  # (y0, x0, y1, x1): a 10 x 10 box against a ground truth of class 1
  # covering its left half (IoU 0.5, no +1) and one of class 0 elsewhere.
  boxes = np.array([[0, 0, 10, 10]], np.float32)
  gt = np.array([[0, 0, 10, 5], [50, 50, 60, 60]], np.float32)
  out = svm.class_overlaps(boxes, gt, [1, 0], 3)
  np.testing.assert_allclose(out, [[0.0, 0.5, 0.0]])


def _settings(**overrides):
  """The recipe's `svm` section (the authors' settings) with overrides."""
  settings = base_config().svm
  settings.update(overrides)
  return settings


class _FakeSolver:
  """Scores = the feature itself (w = 1, b = 0); records each training set."""

  def __init__(self):
    self.calls = []

  def __call__(self, features, labels, **kwargs):
    self.calls.append((np.array(features[:, 0]), np.array(labels)))
    return svm.SvmSolution(svm.LinearSvm(np.ones(1, np.float32), 0.0),
                           np.zeros(len(labels)), 0.0, 0.0, 0.0, 0)


def test_mining_adds_hard_and_evicts_easy():
  # One class; features are 1-D, so each proposal's score is its value.
  images = [
      ('a', [-5.0, -1.1, 0.5, 2.0], [0.1, 0.2, 0.29, 0.7]),
      ('b', [-1.0, -1.0002, -0.5, 3.0, -3.0], [0.0, 0.1, 0.35, 0.0, 0.0]),
      ('a', [-5.0, -1.1, 0.5, 2.0], [0.1, 0.2, 0.29, 0.7]),  # seen again
      ('c', [0.0, -1.00005], [0.0, 0.0]),
  ]

  def batches():
    for key, f, iou in images:
      yield key, np.array(f, np.float32)[:, None], np.array(iou)[:, None]

  fake = _FakeSolver()
  res = svm.train_svms([np.array([[1.0]], np.float32)], batches,
                       _settings(retrain_limit=2), fake)
  negs = [np.sort(f[l < 0]).tolist() for f, l in fake.calls]
  # Image a, first: every IoU < 0.3 proposal (rows 0, 1, 2), trained; -5
  # evicted (< -1.2). Image b: scores > -1.0001 and IoU < 0.3 -> rows 0
  # (-1.0) and 3 (3.0): 2 added, not > 2, no training. Image a again: row 2
  # (0.5) is already cached, nothing new. Image c: rows 0 and 1 (-1.00005 >
  # -1.0001): 4 added > 2, trained.
  assert negs[0] == pytest.approx([-5.0, -1.1, 0.5])
  assert negs[1] == pytest.approx([-1.1, -1.00005, -1.0, 0.0, 0.5, 3.0])
  assert len(fake.calls) == 2
  assert sorted(res.negative_keys[0]) == sorted(
      [('a', 1), ('a', 2), ('b', 0), ('b', 3), ('c', 0), ('c', 1)])
  assert [h[4] for h in res.history] == [1, 0]


def test_last_trainings_name_each_class_once_with_its_final_model():
  # Two classes, scores = features. Image a: both classes take all three
  # proposals and train. Image b: class 0 overlaps (nothing added); class 1
  # adds 3 > retrain_limit 2 and retrains mid-pass. Image c: class 1 adds 1
  # (no retraining). After the pass only class 1 retrains (class 0 added
  # nothing since its last training). History: classes 0, 1, 1, 1.
  images = [('a', [-0.5, -0.4, -0.3], [[0, 0]] * 3),
            ('b', [0.0, 1.0, 2.0], [[0.9, 0]] * 3),
            ('c', [5.0], [[0.9, 0]])]

  def batches():
    for key, f, iou in images:
      yield key, np.array(f, np.float32)[:, None], np.array(iou, np.float64)

  positives = [np.array([[1.0]], np.float32)] * 2
  res = svm.train_svms(positives, batches, _settings(retrain_limit=2),
                       _FakeSolver())
  assert [h[0] for h in res.history] == [0, 1, 1, 1]
  # (class, positives, negatives, primal, evicted) of each final model.
  assert res.last_trainings() == [(0, 1, 3, 0.0, 0), (1, 1, 7, 0.0, 0)]


def test_mining_with_real_solver_multiclass():
  # Two classes in one pass; class k's positives sit at +e_k. After mining,
  # each SVM separates its positives from every negative it was shown.
  rng = np.random.default_rng(0)
  pos = [np.eye(2, dtype=np.float32)[k] + 0.05 * rng.normal(size=(5, 2))
         .astype(np.float32) for k in range(2)]

  def batches():
    for i in range(3):
      f = rng.normal(0, 0.3, (20, 2)).astype(np.float32)
      yield i, f, np.zeros((20, 2))

  res = svm.train_svms(pos, batches, _settings(
      c=10.0, positive_weight=1.0, bias_multiplier=1.0, tol=1e-4), svm.solve_svm)
  assert len(res.svms) == 2
  for k in range(2):
    s = svm.decision_values([res.svms[k]], pos[k])[:, 0]
    assert np.all(s > 0)


def test_mining_needs_positives():
  with pytest.raises(DataError):
    svm.train_svms([np.zeros((0, 3), np.float32)], lambda: iter(()),
                   _settings())


def test_liblinear_solves_the_same_problem_as_the_jax_solver():
  """Both minimise 1/2|w|^2 + 1/2 (b/B)^2 + sum c_i hinge_i: at tight
  tolerances their objectives (recomputed here) agree."""
  rng = np.random.default_rng(5)
  x = np.abs(rng.normal(size=(300, 20))).astype(np.float32)
  y = np.where(x[:, 0] + 0.3 * rng.normal(size=300) > 0.9, 1, -1)
  x *= 20 / np.linalg.norm(x, axis=1).mean()

  def objective(s, c=1e-2, w1=2.0, bias_mult=10.0):
    w, b = s.weights.astype(np.float64), s.bias
    hinge = np.maximum(0, 1 - y * (x.astype(np.float64) @ w + b))
    return 0.5 * (w @ w + (b / bias_mult) ** 2) + np.sum(
        np.where(y > 0, c * w1, c) * hinge)

  ours = svm.solve_svm(x, y, c=1e-2, tol=1e-6).svm
  theirs = svm.solve_svm_liblinear(x, y, c=1e-2, tol=1e-6)
  assert objective(theirs.svm) == pytest.approx(objective(ours), rel=1e-4)
  assert theirs.primal == pytest.approx(objective(theirs.svm), rel=1e-6)
