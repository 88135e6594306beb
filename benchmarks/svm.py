"""Linear SVM solvers on a VOC-sized problem: which one trains the detector's
per-class SVMs (issue #16: "in JAX on the device, or scikit-learn's liblinear,
which the authors used? measure both").

The problem of `sppnet_jax.detection.svm` (liblinear -s 3, C = 1e-3, w1 = 2,
B = 10) on generated fc7-like features: D = 4096, ReLU of Gaussians with
class structure (positives shifted along a random direction, negatives from a
few background clusters, some negatives close to the positives: the hard
ones), scaled to mean L2 norm 20 as the paper does; --positives and
--negatives set the cache size (VOC: a few hundred positives per class, 10^4
to 10^5 negatives after mining).

Rows:
  * jax-cd: `solve_svm` (dual coordinate descent on working sets, jitted) at
    tol 0.1 (liblinear's default) and 1e-3 (ours);
  * numpy-cd: liblinear's algorithm with its shrinking, line for line, in a
    Python loop over coordinates (float64);
  * liblinear: scikit-learn's LinearSVC(loss='hinge', dual=True,
    intercept_scaling=B, class_weight={1: w1}), liblinear itself, only if
    scikit-learn can be imported (it is not a dependency of this project:
    e.g. pip install --target DIR scikit-learn and PYTHONPATH=DIR). LinearSVC
    passes C as liblinear's -c; its default tol is 1e-4.
Columns: seconds (after a warm-up call for jax-cd), primal objective, its
excess over the best primal of the table (relative), dual gap where the
solver returns the dual, and agreement with the most accurate row: max |score
difference| over all samples and the number of samples on the other side of
the margins (+-1) or of 0.

  python benchmarks/svm.py --positives=300 --negatives=20000
"""

import time

from absl import app, flags
import numpy as np

from sppnet_jax.detection.training import svm as svm_lib
from sppnet_jax.detection.training.feature_scale import mean_norm_scale

flags.DEFINE_integer('positives', 300, 'Positives (ground-truth boxes).')
flags.DEFINE_integer('negatives', 20000, 'Negatives in the cache.')
flags.DEFINE_integer('dim', 4096, 'Feature dimension (fc7: 4096).')
flags.DEFINE_bool('numpy_cd', True, 'Also the Python-loop liblinear port.')
flags.DEFINE_integer('seed', 0, 'Data seed.')
FLAGS = flags.FLAGS

C, W_POS, B = 1e-3, 2.0, 10.0


def make_problem(positives, negatives, dim, seed):
  """fc7-like features: ReLU(Gaussian clusters), mean norm 20."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 1, (8, dim)).astype(np.float32)
  direction = rng.normal(0, 1, dim).astype(np.float32)
  cluster = rng.integers(0, 8, positives + negatives)
  z = centres[cluster] + rng.normal(0, 2, (positives + negatives, dim)).astype(
      np.float32)
  shift = np.concatenate([np.full(positives, 1.0),
                          rng.uniform(-0.2, 0.8, negatives)]).astype(np.float32)
  x = np.maximum(z + shift[:, None] * direction, 0)
  x *= mean_norm_scale(x[:2000])
  y = np.concatenate([np.ones(positives), -np.ones(negatives)])
  return x, y


def objective(x, y, w, b):
  m = y * (x @ w.astype(np.float32) + b)
  c = np.where(y > 0, C * W_POS, C)
  return 0.5 * (w @ w + (b / B) ** 2) + np.sum(c * np.maximum(0, 1 - m))


def numpy_cd(x, y, eps=0.1, seed=0):
  """liblinear 1.93's solve_l2r_l1l2_svc (L1 loss), its shrinking included,
  with the bias as the extra feature B; returns (w, b)."""
  rng = np.random.default_rng(seed)
  n = len(y)
  xs = x.astype(np.float64)
  upper = np.where(y > 0, C * W_POS, C)
  qd = np.einsum('nd,nd->n', xs, xs) + B * B
  alpha, w, v = np.zeros(n), np.zeros(x.shape[1]), 0.0
  index, active = np.arange(n), n
  pg_max_old, pg_min_old = np.inf, -np.inf
  for _ in range(1000):
    pg_max_new, pg_min_new = -np.inf, np.inf
    index[:active] = index[:active][rng.permutation(active)]
    s = 0
    while s < active:
      i = index[s]
      g = y[i] * (xs[i] @ w + B * v) - 1
      pg = 0.0
      if alpha[i] == 0:
        if g > pg_max_old:
          active -= 1
          index[s], index[active] = index[active], index[s]
          continue
        if g < 0:
          pg = g
      elif alpha[i] == upper[i]:
        if g < pg_min_old:
          active -= 1
          index[s], index[active] = index[active], index[s]
          continue
        if g > 0:
          pg = g
      else:
        pg = g
      pg_max_new, pg_min_new = max(pg_max_new, pg), min(pg_min_new, pg)
      if abs(pg) > 1e-12:
        old = alpha[i]
        alpha[i] = min(max(old - g / qd[i], 0.0), upper[i])
        d = (alpha[i] - old) * y[i]
        w += d * xs[i]
        v += d * B
      s += 1
    if pg_max_new - pg_min_new <= eps:
      if active == n:
        break
      active, pg_max_old, pg_min_old = n, np.inf, -np.inf
      continue
    pg_max_old = np.inf if pg_max_new <= 0 else pg_max_new
    pg_min_old = -np.inf if pg_min_new >= 0 else pg_min_new
  return w, B * v


def main(argv):
  del argv
  x, y = make_problem(FLAGS.positives, FLAGS.negatives, FLAGS.dim, FLAGS.seed)
  print(f'problem: {FLAGS.positives} positives, {FLAGS.negatives} negatives, '
        f'D = {FLAGS.dim}, C = {C}, w1 = {W_POS}, B = {B}')
  rows = []
  svm_lib.solve_svm(x[:600], y[:600], tol=0.1)  # compile the small buckets
  for tol in (0.1, 1e-3):
    t = time.perf_counter()
    sol = svm_lib.solve_svm(x, y, c=C, positive_weight=W_POS,
                            bias_multiplier=B, tol=tol)
    rows.append((f'jax-cd tol {tol:g}', time.perf_counter() - t,
                 sol.svm.weights.astype(np.float64), sol.svm.bias,
                 sol.primal - sol.dual))
  try:
    from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
    for tol in (0.1, 1e-4):
      model = LinearSVC(loss='hinge', dual=True, C=C, tol=tol,
                        intercept_scaling=B, class_weight={1: W_POS},
                        max_iter=100000)
      t = time.perf_counter()
      model.fit(x, y)
      rows.append((f'liblinear tol {tol:g}', time.perf_counter() - t,
                   model.coef_[0].astype(np.float64),
                   float(model.intercept_[0]), None))
  except ImportError:
    print('liblinear: scikit-learn is not importable, row skipped')
  if FLAGS.numpy_cd:
    t = time.perf_counter()
    w, b = numpy_cd(x, y)
    rows.append(('numpy-cd tol 0.1', time.perf_counter() - t, w, b, None))
  objs = [objective(x, y, w, b) for _, _, w, b, _ in rows]
  best = int(np.argmin(objs))
  ref = x @ rows[best][2].astype(np.float32) + rows[best][3]
  print('\n| solver | seconds | primal | excess | dual gap | max |score diff| '
        '| flips at +-1 | flips at 0 |')
  print('|---|---|---|---|---|---|---|---|')
  for (name, secs, w, b, gap), obj in zip(rows, objs):
    s = x @ w.astype(np.float32) + b
    flips_margin = int(np.sum((y * s < 1) != (y * ref < 1)))
    flips_zero = int(np.sum((s > 0) != (ref > 0)))
    gap_txt = '' if gap is None else f'{gap:.2e}'
    print(f'| {name} | {secs:.2f} | {obj:.6f} | {(obj - objs[best]) / objs[best]:.1e} '
          f'| {gap_txt} | {np.abs(s - ref).max():.2e} | {flips_margin} | '
          f'{flips_zero} |')


if __name__ == '__main__':
  app.run(main)
