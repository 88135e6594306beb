"""Class-specific bounding-box regression (R-CNN's appendix C, as SPP-net uses
it on pooled conv5 features): a ridge regressor per class maps the features of
a proposal to the offsets that move it onto its ground-truth box, applied to
the detections NMS keeps.

Parameterisation: R-CNN's deltas (`boxes.encode_deltas` / `decode_deltas`),
(t_y, t_x, t_h, t_w) on the library's continuous boxes (h = y1 - y0, no +1).
R-CNN's MATLAB code (`rcnn_train_bbox_regressor.m`, copied into SPP_net's
`spp_train_bbox_regressor.m`) orders them (x, y, w, h) and computes
w = x2 - x1 + eps on 1-based inclusive boxes, i.e. one pixel narrower than the
box covers; py-faster-rcnn's `bbox_transform.py` adds the +1, which turns
inclusive indices into exactly our continuous width. Both conventions make
decoding the inverse of encoding, so the choice only shifts learned targets
by O(1 / box side) (under 1% for the >= 100-pixel boxes of VOC); with
continuous boxes the width x1 - x0 is exact and no +1 belongs here.

Training (`select_samples`, `fit`), following the authors' code
(`spp_train_bbox_regressor.m`, called with min_overlap 0.5, layer 5,
lambda 4000 by `spp_exp_bbox_reg_train_and_test_voc.m`):

* Samples: every box whose IoU with its best ground-truth box is at least
  `min_iou`, labelled with that box's class, its target being that box.
  SPP-net's paper: "at least 50%" (>= 0.5), the default; SPP-net's code keeps
  IoU > 0.5 (`strict=True`); R-CNN used > 0.6. The authors' boxes include the
  ground-truth boxes themselves (their roidb prepends them to the proposals,
  difficult objects included in this experiment), which give zero deltas:
  pass `concatenate([gt_boxes, proposals])` to do the same. IoU here has no +1
  (`boxes.iou_matrix` with plus_one=False); the authors' roidb used the +1
  convention, a difference of O(1 / box side).
* Features: multiplied by one scalar, `feature_scale` = 20 / (mean L2 norm of
  the features), the authors' `spp_scale_features`, so that lambda = 4000 means
  what it meant for them. They measure the mean norm on 200 random boxes of
  each of 200 random training images (`spp_feature_stats`); `fit` defaults to
  the mean norm of the rows it is given (the positives): pass
  `feature_scale=mean_norm_scale(random_box_features)` to match the authors.
* Targets: centred per class (mean subtracted before the solve, added back
  after). The authors also whiten them (times T = (S + 0.001 I)^(-1/2) before,
  times T^-1 after); ridge with one design matrix for all four outputs is
  linear in the targets, so the whitening cancels exactly and is left out.
* Ridge: minimise ||[s X, 1] W - Y||^2 + lambda ||W||^2 with the bias row
  regularised too, as the authors' Cholesky solve does (the column of ones is
  part of the matrix they regularise); `regularize_bias=False` leaves it free.
  Solved in float64 in the primal ((D+1) x (D+1)) or the dual (N x N),
  whichever is smaller: the same minimiser.
* A class with no samples gets all-zero weights: zero deltas, so decoding
  returns its boxes unchanged.

The fitted model folds the feature scale and the target means into
per-class weights (num_classes, D + 1, 4) acting on raw features, the last
row the bias: deltas = features @ w[:-1] + w[-1].
"""

import dataclasses

import numpy as np
from scipy import linalg

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.inference.linear_models import BoxRegressor
from sppnet_jax.detection.training.feature_scale import mean_norm_scale
from sppnet_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class Samples:
  """Training samples of one image: `indices` into its boxes, their
  regression `deltas` (n, 4) to their best ground-truth box, that box's
  `classes` and the `iou` with it."""
  indices: np.ndarray
  deltas: np.ndarray
  classes: np.ndarray
  iou: np.ndarray


def select_samples(boxes, gt_boxes, gt_classes, min_iou: float = 0.5,
                   strict: bool = False) -> Samples:
  """The boxes of one image that train the regressors (module docstring):
  IoU >= min_iou (> with `strict`) with their best ground-truth box (ties: the
  first), labelled with its class. (R, 4) boxes, (G, 4) and (G,) ground truth.
  """
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
  gt_classes = np.asarray(gt_classes).reshape(-1)
  if gt_classes.shape[0] != gt_boxes.shape[0]:
    raise DataError(f'{gt_boxes.shape[0]} ground-truth boxes but '
                    f'{gt_classes.shape[0]} classes: give one class per box')
  if not 0 < min_iou <= 1:
    raise ConfigError(f'min_iou={min_iou} must be in (0, 1]: the authors use '
                      '0.5 (SPP-net) or 0.6 (R-CNN)')
  if not gt_boxes.shape[0] or not boxes.shape[0]:
    empty = np.zeros(0, np.int64)
    return Samples(empty, np.zeros((0, 4), np.float32),
                   gt_classes[:0].astype(np.int64), np.zeros(0, np.float32))
  best, best_iou = box_lib.best_match(boxes, gt_boxes)
  keep = best_iou > min_iou if strict else best_iou >= min_iou
  indices = np.flatnonzero(keep)
  return Samples(indices.astype(np.int64),
                 box_lib.encode_deltas(boxes[indices], gt_boxes[best[indices]]),
                 gt_classes[best[indices]].astype(np.int64),
                 best_iou[indices].astype(np.float32))


def _ridge_solve(x, y, ridge, scale, regularize_bias, chunk, solver):
  """min ||[scale x, 1] w - y||^2 + ridge ||w||^2 (bias term's penalty only
  with regularize_bias), in float64, primal or dual: (D + 1, k) w."""
  n, dim = x.shape
  y = np.asarray(y, np.float64)
  if regularize_bias:
    x_mean, y_mean, cols = np.zeros(dim), np.zeros(y.shape[1]), dim + 1
  else:
    # A free bias: centre both sides, solve without it, recover it after.
    x_mean = x.mean(0, dtype=np.float64)
    y_mean = y.mean(0)
    y = y - y_mean
    cols = dim

  def design(rows):
    a = (np.asarray(x[rows], np.float64) - x_mean) * scale
    if regularize_bias:
      a = np.concatenate([a, np.ones((a.shape[0], 1))], 1)
    return a

  if solver == 'primal' or (solver == 'auto' and cols <= n):
    # Primal: (A^T A + ridge I) w = A^T y, A^T A accumulated by row blocks.
    gram = np.zeros((cols, cols))
    rhs = np.zeros((cols, y.shape[1]))
    for start in range(0, n, chunk):
      a = design(slice(start, start + chunk))
      gram += a.T @ a
      rhs += a.T @ y[start:start + chunk]
    gram[np.diag_indices(cols)] += ridge
    w = linalg.cho_solve(linalg.cho_factor(gram, overwrite_a=True), rhs)
  else:  # dual: w = A^T (A A^T + ridge I)^-1 y
    a = design(slice(None))
    kernel = a @ a.T
    kernel[np.diag_indices(n)] += ridge
    w = a.T @ linalg.cho_solve(linalg.cho_factor(kernel, overwrite_a=True), y)
  if regularize_bias:
    return w
  # Prediction on raw rows: scale (x - x_mean) w + y_mean.
  return np.concatenate([w, (y_mean - scale * x_mean @ w)[None]], 0)


def fit(features, deltas, classes, num_classes: int, ridge: float = 4000.0,
        feature_scale: float | None = None, regularize_bias: bool = True,
        center_targets: bool = True, solver: str = 'auto',
        chunk: int = 4096) -> BoxRegressor:
  """Per-class ridge regressors (module docstring for what follows whom).

  Args:
    features: (N, D) features of the training boxes (pooled conv5, 12,800-d
      for ZF-5), any float dtype; rows are read class by class, `chunk` at a
      time in the primal, so float32 inputs are never copied whole to float64.
    deltas: (N, 4) their targets (`boxes.encode_deltas`).
    classes: (N,) int class of each box, in [0, num_classes).
    num_classes: classes to fit; one without samples gets zero weights.
    ridge: lambda (the authors' 4000 for their feature scale).
    feature_scale: features are multiplied by it before the solve; None:
      `mean_norm_scale(features)`.
    regularize_bias: penalise the bias like the weights (the authors).
    center_targets: subtract each class's mean delta before the solve (the
      authors; matters only with a regularised bias).
    solver: 'primal' ((D+1)^2 normal equations), 'dual' (N^2 kernel) or
      'auto': per class, whichever matrix is smaller. Both are Cholesky
      solves of the same problem.
    chunk: rows per block when accumulating the primal's Gram matrix.

  Returns:
    A BoxRegressor (`inference.linear_models`) giving deltas for raw
    features.
  """
  features = np.asarray(features)
  deltas = np.asarray(deltas)
  classes = np.asarray(classes)
  if features.ndim != 2:
    raise DataError(f'features must be (N, D), got shape {features.shape}')
  n, dim = features.shape
  if deltas.shape != (n, 4) or classes.shape != (n,):
    raise DataError(f'{n} feature rows need deltas ({n}, 4) and classes ({n},),'
                    f' got {deltas.shape} and {classes.shape}')
  if not np.issubdtype(classes.dtype, np.integer):
    raise DataError(f'classes must be integers, got {classes.dtype}')
  if num_classes < 1:
    raise ConfigError(f'num_classes={num_classes} must be at least 1')
  if n and (classes.min() < 0 or classes.max() >= num_classes):
    raise DataError(f'classes range over [{classes.min()}, {classes.max()}], '
                    f'outside [0, {num_classes}): check the label mapping')
  if not ridge > 0:
    raise ConfigError(f'ridge={ridge} must be positive (the authors use 4000)')
  if solver not in ('auto', 'primal', 'dual'):
    raise ConfigError(f"solver={solver!r} must be 'auto', 'primal' or 'dual'")
  if chunk < 1:
    raise ConfigError(f'chunk={chunk} must be at least 1')
  if not (np.all(np.isfinite(features)) and np.all(np.isfinite(deltas))):
    raise DataError('features or deltas are not all finite: check the pooled '
                    'features and drop degenerate boxes before encoding')
  if feature_scale is None:
    feature_scale = mean_norm_scale(features) if n else 1.0
  elif not (feature_scale > 0 and np.isfinite(feature_scale)):
    raise ConfigError(f'feature_scale={feature_scale} must be positive')

  weights = np.zeros((num_classes, dim + 1, 4))
  counts = np.bincount(classes, minlength=num_classes) if n else np.zeros(
      num_classes, np.int64)
  for c in np.flatnonzero(counts):
    rows = np.flatnonzero(classes == c)
    y = deltas[rows].astype(np.float64)
    mu = y.mean(0) if center_targets else np.zeros(4)
    w = _ridge_solve(features[rows], y - mu, ridge, feature_scale,
                     regularize_bias, chunk, solver)
    weights[c, :dim] = feature_scale * w[:dim]
    weights[c, dim] = w[dim] + mu
  return BoxRegressor(weights, counts.astype(np.int64), float(feature_scale),
                      float(ridge))
