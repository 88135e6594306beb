"""Per-class linear SVMs on fc7 features with hard-negative mining (the paper's
detection classifiers, section 4, as trained by R-CNN's and SPP-net's code).

The problem (liblinear `-s 3 -c C -w1 w_pos -B B`, which the authors used):

  min_{w, b}  1/2 |w|^2 + 1/2 (b / B)^2 + sum_i c_i max(0, 1 - y_i (w.x_i + b))

with y_i = +1 for positives, -1 for negatives, c_i = C * w_pos for positives
and C for negatives. The bias is liblinear's: an extra feature of value B
whose weight v is regularised like the others, so b = B v. Authors: C = 1e-3,
w_pos = 2, B = 10, on fc7 (after ReLU) scaled so that the mean L2 norm is 20
(`feature_scale.mean_norm_scale`).

Solver (`solve_svm`): liblinear's dual coordinate descent (Hsieh et al. 2008)
on the dual  min_a 1/2 |sum_i a_i y_i x~_i|^2 - sum_i a_i,  0 <= a_i <= c_i
(x~ = [x, B]), with liblinear's projected-gradient stopping rule, max PG - min PG <= tol,
the max and min taken with 0 included (at a = 0 every PG is -1 and their
spread 0: 0 keeps that start from passing). liblinear's default tol is 0.1,
ours 1e-3, closer to the optimum. Shrinking is done as an active set: a jitted JAX loop runs exact
coordinate steps on the working set (support vectors and margin violators),
and the host recomputes w from a in float64 and every margin with one matrix
product, then picks the next working set, until the whole problem satisfies
the rule. Why this and not the alternatives is measured in `benchmarks/svm.py`.

Hard-negative mining (`train_svms`), the loop of R-CNN's `rcnn_train.m` and
SPP-net's `spp_train.m` (one pass over the images):
  * a class's cache starts with all its positives (ground-truth boxes) and no
    negatives; candidates are proposals with IoU < `negative_iou` (0.3) to
    every ground-truth box of the class (the caller's IoU, continuous
    coordinates, no +1);
  * while a class has no model yet (the first image), every candidate is
    added; afterwards only those the current model scores above
    `hard_threshold` (-1.0001: inside the margin), and never a (image, row)
    key already in the cache;
  * the class is retrained on its first image with negatives, whenever more
    than `retrain_limit` (2000) negatives were added since the last training,
    and after the last image; after each training the negatives scoring below
    `evict_threshold` (-1.2) are evicted from the cache (easy negatives);
  * the authors retrain after the last image even when nothing was added;
    here that training is skipped, which gives the same optimum (the evicted
    negatives had a_i = 0).
"""

import dataclasses
import functools
from typing import Callable, Hashable, Iterable, NamedTuple, Sequence

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.errors import DataError
from sppnet_jax.detection import boxes as box_lib


class LinearSvm(NamedTuple):
  """score(x) = x . weights + bias."""
  weights: np.ndarray  # (D,) float32
  bias: float


@dataclasses.dataclass(frozen=True)
class SvmSolution:
  """A solved problem: the SVM, its dual variables and how close it is."""
  svm: LinearSvm
  alpha: np.ndarray  # (N,) float64 dual variables, 0 <= alpha_i <= c_i
  primal: float  # objective of the module docstring at (w, b)
  dual: float  # dual objective at alpha (<= primal; equal at the optimum)
  violation: float  # max(PG, 0) - min(PG, 0) over all samples
  epochs: int  # coordinate-descent epochs over working sets


def class_overlaps(boxes, gt_boxes, gt_labels, num_classes: int) -> np.ndarray:
  """(R, 4) boxes, (G, 4) ground truth, (G,) labels -> (R, num_classes) max
  IoU of each box with the ground truth of each class (0 where a class has
  none), by `boxes.iou_matrix` (continuous, no +1)."""
  gt_labels = np.asarray(gt_labels).reshape(-1)
  iou = box_lib.iou_matrix(boxes, gt_boxes)
  out = np.zeros((iou.shape[0], num_classes))
  for k in np.unique(gt_labels):
    out[:, k] = iou[:, gt_labels == k].max(axis=1)
  return out


def decision_values(svms: Sequence[LinearSvm], features) -> np.ndarray:
  """(R, D) features (scaled as in training) -> (R, K) scores of K SVMs."""
  w = np.stack([np.asarray(s.weights, np.float32) for s in svms], axis=1)
  b = np.asarray([s.bias for s in svms], np.float32)
  return np.asarray(features, np.float32) @ w + b


# --------------------------------------------------------------------------
# The solver.


def _bucket(n: int) -> int:
  """Working sets padded to powers of two (>= 256): few compilations."""
  return max(256, 1 << (n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=('max_epochs',))
def _cd_epochs(x, rows, valid, y, qd, upper, alpha, w, v, bias_mult, key, tol,
               max_epochs: int):
  """Dual coordinate descent on the working set `rows` (padded, `valid`):
  random order each epoch, until liblinear's PG rule holds on the set or
  after max_epochs. w is x's part of the weights, v the bias feature's."""
  m = rows.shape[0]

  def step(s, carry):
    alpha, w, v, pg_max, pg_min, order = carry
    j = order[s]
    i = rows[j]
    xi = x[i]
    a, yj, cj = alpha[j], y[j], upper[j]
    g = yj * (jnp.dot(xi, w) + bias_mult * v) - 1.0
    pg = jnp.where(a <= 0, jnp.minimum(g, 0.0),
                   jnp.where(a >= cj, jnp.maximum(g, 0.0), g))
    pg = jnp.where(valid[j], pg, 0.0)
    new = jnp.clip(a - g / qd[j], 0.0, cj)
    new = jnp.where(valid[j] & (jnp.abs(pg) > 1e-12), new, a)
    d = (new - a) * yj
    return (alpha.at[j].set(new), w + d * xi, v + d * bias_mult,
            jnp.maximum(pg_max, pg), jnp.minimum(pg_min, pg), order)

  def epoch(carry):
    alpha, w, v, e, _ = carry
    order = jax.random.permutation(jax.random.fold_in(key, e), m)
    alpha, w, v, pg_max, pg_min, _ = lax.fori_loop(
        0, m, step, (alpha, w, v, jnp.float32(0), jnp.float32(0), order))
    return alpha, w, v, e + 1, pg_max - pg_min

  def not_done(carry):
    return (carry[3] < max_epochs) & (carry[4] > tol)

  alpha, w, v, e, _ = lax.while_loop(
      not_done, epoch, (alpha, w, v, jnp.int32(0), jnp.float32(jnp.inf)))
  return alpha, w, v, e


def _margins(x_host, w, v, bias_mult):
  return x_host @ w.astype(np.float32) + np.float32(bias_mult * v)


def solve_svm(features, labels, *, c: float = 1e-3,
              positive_weight: float = 2.0, bias_multiplier: float = 10.0,
              tol: float = 1e-3, seed: int = 0, inner_epochs: int = 10,
              max_rounds: int = 200) -> SvmSolution:
  """L2-regularised L1-loss (hinge) linear SVM, liblinear `-s 3` with
  `-c c -w1 positive_weight -B bias_multiplier` (module docstring).

  features: (N, D) float32; labels: (N,) +1 / -1 (or bool). Deterministic
  for a seed. Each round runs up to `inner_epochs` epochs on the working set;
  after `max_rounds` rounds the last iterate is returned (`violation` says
  how far it is from the rule).
  """
  x_host = np.ascontiguousarray(features, np.float32)
  labels = np.asarray(labels)
  if x_host.ndim != 2 or labels.shape != (x_host.shape[0],):
    raise DataError(f'solve_svm needs (N, D) features and (N,) labels, got '
                    f'{x_host.shape} and {labels.shape}')
  y = np.where(labels.astype(np.float64) > 0, 1.0, -1.0)
  if not np.isfinite(x_host).all():
    raise DataError('SVM features contain NaN or inf; check the fc7 cache')
  n = x_host.shape[0]
  upper = np.where(y > 0, c * positive_weight, c)
  qd = (np.einsum('nd,nd->n', x_host, x_host, dtype=np.float64) +
        bias_multiplier ** 2)
  x_dev = jnp.asarray(x_host)
  alpha = np.zeros(n)
  w, v = np.zeros(x_host.shape[1]), 0.0
  key = jax.random.key(seed)
  epochs, violation = 0, np.inf
  for round_ in range(max_rounds + 1):
    g = y * _margins(x_host, w, v, bias_multiplier) - 1.0
    at_zero, at_upper = alpha <= 0, alpha >= upper
    pg = np.where(at_zero, np.minimum(g, 0), np.where(at_upper,
                                                      np.maximum(g, 0), g))
    violation = float(max(pg.max(), 0) - min(pg.min(), 0)) if n else 0.0
    if violation <= tol or round_ == max_rounds:
      break
    # Working set: support vectors, and the rest within the margin.
    rows = np.flatnonzero(~at_zero | (g < tol))
    size = _bucket(rows.size)
    pad = size - rows.size
    rows_p = np.concatenate([rows, np.zeros(pad, np.int64)]).astype(np.int32)
    valid = np.arange(size) < rows.size
    take = lambda a, fill: np.concatenate([a[rows], np.full(pad, fill)])
    a_set, w32, v32, e = _cd_epochs(
        x_dev, rows_p, valid, take(y, 1.0).astype(np.float32),
        take(qd, 1.0).astype(np.float32), take(upper, 0.0).astype(np.float32),
        take(alpha, 0.0).astype(np.float32), w.astype(np.float32),
        np.float32(v), np.float32(bias_multiplier),
        jax.random.fold_in(key, round_), np.float32(tol),
        max_epochs=inner_epochs)
    epochs += int(e)
    alpha[rows] = np.clip(np.asarray(a_set, np.float64)[:rows.size], 0,
                          upper[rows])
    # w from alpha in float64 on the support vectors: no float32 drift.
    sv = np.flatnonzero(alpha > 0)
    coef = alpha[sv] * y[sv]
    w = x_host[sv].astype(np.float64).T @ coef
    v = float(bias_multiplier * coef.sum())
  if violation > tol:
    logging.warning('solve_svm: %d rounds left a violation of %.3g > tol '
                    '%.3g; raise max_rounds', max_rounds, violation, tol)
  margins = y * (_margins(x_host, w, v, bias_multiplier))
  reg = 0.5 * (w @ w + v * v)
  primal = reg + float(np.sum(upper * np.maximum(0.0, 1.0 - margins)))
  dual = float(alpha.sum()) - reg
  svm = LinearSvm(w.astype(np.float32), float(bias_multiplier * v))
  return SvmSolution(svm, alpha, float(primal), dual, violation, epochs)


def solve_svm_liblinear(features, labels, *, c: float = 1e-3,
                        positive_weight: float = 2.0,
                        bias_multiplier: float = 10.0, tol: float = 1e-3,
                        seed: int = 0) -> SvmSolution:
  """The same problem solved by liblinear itself (scikit-learn's LinearSVC,
  loss='hinge', dual: liblinear `-s 3`, its bias a feature of value
  `bias_multiplier` regularised like the weights): the authors' solver, and
  2.4x faster than `solve_svm` on a VOC-sized cache (benchmarks/svm.py). The
  dual variables are not exposed: alpha is empty, dual and violation NaN."""
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
  x = np.ascontiguousarray(features, np.float32)
  labels = np.asarray(labels)
  if x.ndim != 2 or labels.shape != (x.shape[0],):
    raise DataError(f'solve_svm_liblinear needs (N, D) features and (N,) '
                    f'labels, got {x.shape} and {labels.shape}')
  if not np.isfinite(x).all():
    raise DataError('SVM features contain NaN or inf; check the fc7 cache')
  y = np.where(labels.astype(np.float64) > 0, 1, -1)
  if len(np.unique(y)) < 2:
    raise DataError('an SVM needs positives and negatives, got one kind')
  model = LinearSVC(loss='hinge', dual=True, C=c, tol=tol,
                    intercept_scaling=bias_multiplier,
                    class_weight={1: positive_weight}, random_state=seed,
                    max_iter=100000)
  model.fit(x, y)
  w = model.coef_[0].astype(np.float64)
  b = float(model.intercept_[0])
  margins = y * (x.astype(np.float64) @ w + b)
  upper = np.where(y > 0, c * positive_weight, c)
  primal = (0.5 * (w @ w + (b / bias_multiplier) ** 2)
            + float(np.sum(upper * np.maximum(0.0, 1.0 - margins))))
  return SvmSolution(LinearSvm(w.astype(np.float32), b), np.zeros(0),
                     primal, float('nan'), float('nan'), int(model.n_iter_))


SOLVERS = {'liblinear': solve_svm_liblinear, 'jax': solve_svm}


# --------------------------------------------------------------------------
# Hard-negative mining.


@dataclasses.dataclass
class _Cache:
  negatives: list  # (n, D) float32 blocks
  keys: list  # (image, row) per cached negative, in order
  key_set: set
  added: int = 0
  svm: LinearSvm | None = None


@dataclasses.dataclass(frozen=True)
class MiningResult:
  """One SVM per class, the final caches' negative keys and a log entry per
  training, in the order they ran: (class, positives, negatives, primal,
  evicted)."""
  svms: list
  negative_keys: list
  history: list

  def last_trainings(self) -> list:
    """Each class's last `history` entry (the one its SVM comes from), in
    class order."""
    last = {entry[0]: entry for entry in self.history}
    return [last[k] for k in sorted(last)]


Batches = Callable[[], Iterable[tuple[Hashable, np.ndarray, np.ndarray]]]


def train_svms(positives: Sequence[np.ndarray], batches: Batches, settings,
               solver: Callable[..., SvmSolution] = solve_svm_liblinear, *,
               seed: int = 0) -> MiningResult:
  """Per-class SVMs with one pass of hard-negative mining (module docstring).

  positives[k]: (P_k, D) features of class k's ground-truth boxes.
  batches(): yields (image_key, features (R, D), overlaps (R, K)) per image,
  overlaps[r, k] the max IoU of proposal r with class k's ground truth
  (`class_overlaps`); features scaled as for testing
  (`feature_scale.mean_norm_scale`). All classes are mined in the one pass,
  as the authors do, so a feature cache is read once. `settings` is the
  config's `svm` section (c, positive_weight, bias_multiplier, tol,
  negative_iou, hard_threshold, evict_threshold, retrain_limit);
  `solver(features, labels, c=..., positive_weight=..., bias_multiplier=...,
  tol=..., seed=...)` is one of SOLVERS.
  """
  num_classes = len(positives)
  positives = [np.asarray(p, np.float32) for p in positives]
  dims = {p.shape[1] for p in positives if p.ndim == 2}
  if len(dims) != 1 or any(p.ndim != 2 or not len(p) for p in positives):
    raise DataError('train_svms needs at least one positive (P_k, D) feature '
                    'array per class, all of one D; a class without '
                    'ground-truth boxes cannot be trained')
  dim = dims.pop()
  caches = [_Cache([], [], set()) for _ in range(num_classes)]
  history = []

  def retrain(k):
    cache = caches[k]
    neg = np.concatenate(cache.negatives) if len(cache.negatives) > 1 else (
        cache.negatives[0])
    feats = np.concatenate([positives[k], neg])
    labels = np.concatenate([np.ones(len(positives[k])), -np.ones(len(neg))])
    sol = solver(feats, labels, c=settings.c,
                 positive_weight=settings.positive_weight,
                 bias_multiplier=settings.bias_multiplier, tol=settings.tol,
                 seed=seed)
    cache.svm, cache.added = sol.svm, 0
    keep = decision_values([sol.svm], neg)[:, 0] >= settings.evict_threshold
    history.append((k, len(positives[k]), len(neg), sol.primal,
                    int((~keep).sum())))
    cache.negatives = [neg[keep]]
    cache.keys = [key for key, kept in zip(cache.keys, keep) if kept]
    cache.key_set = set(cache.keys)

  for image, feats, overlaps in batches():
    feats = np.asarray(feats, np.float32)
    overlaps = np.asarray(overlaps, np.float64)
    if feats.ndim != 2 or feats.shape[1] != dim or overlaps.shape != (
        feats.shape[0], num_classes):
      raise DataError(f'image {image!r}: features {feats.shape} and overlaps '
                      f'{overlaps.shape} must be (R, {dim}) and (R, '
                      f'{num_classes}); check the feature cache')
    trained = [c.svm is not None for c in caches]
    scores = (decision_values([c.svm for c in caches], feats)
              if all(trained) and len(feats) else None)
    for k, cache in enumerate(caches):
      take = overlaps[:, k] < settings.negative_iou
      if cache.svm is not None:
        s = (scores[:, k] if scores is not None
             else decision_values([cache.svm], feats)[:, 0])
        take &= s > settings.hard_threshold
      rows = [r for r in np.flatnonzero(take) if (image, r) not in
              cache.key_set]
      if rows:
        cache.negatives.append(feats[rows])
        new_keys = [(image, int(r)) for r in rows]
        cache.keys.extend(new_keys)
        cache.key_set.update(new_keys)
        cache.added += len(rows)
      if cache.keys and (cache.svm is None or
                         cache.added > settings.retrain_limit):
        retrain(k)
  for k, cache in enumerate(caches):
    if cache.added or (cache.svm is None and cache.keys):
      retrain(k)
    if cache.svm is None:
      raise DataError(f'class {k} got no negatives (no proposal with IoU < '
                      f'{settings.negative_iou}); give images with proposals')
  return MiningResult([c.svm for c in caches], [list(c.keys) for c in caches],
                      history)
