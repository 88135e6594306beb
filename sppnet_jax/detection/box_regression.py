"""Class-specific bounding-box regression (R-CNN's appendix C, as SPP-net uses
it on pooled conv5 features): a ridge regressor per class maps the features of
a proposal to the offsets that move it onto its ground-truth box, applied to
the detections NMS keeps.

Parameterisation (R-CNN): a box is its centre (c_y, c_x) and size (h, w), and
the deltas from a proposal P to a target G are

  t_y = (G_cy - P_cy) / P_h,  t_x = (G_cx - P_cx) / P_w,
  t_h = log(G_h / P_h),       t_w = log(G_w / P_w),

ordered (t_y, t_x, t_h, t_w) like the library's (y0, x0, y1, x1) boxes
(`boxes.py`: continuous pixels, h = y1 - y0, w = x1 - x0, no +1). R-CNN's
MATLAB code (`rcnn_train_bbox_regressor.m`, copied into SPP_net's
`spp_train_bbox_regressor.m`) orders them (x, y, w, h) and computes
w = x2 - x1 + eps on 1-based inclusive boxes, i.e. one pixel narrower than the
box covers; py-faster-rcnn's `bbox_transform.py` adds the +1, which turns
inclusive indices into exactly our continuous width. Both conventions make
`decode` the inverse of `encode`, so the choice only shifts learned targets
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
  (`nms.iou_matrix` with plus_one=False); the authors' roidb used the +1
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
* A class with no samples gets all-zero weights: zero deltas, so `decode`
  returns its boxes unchanged.

The fitted model folds the feature scale and the target means into
per-class weights (num_classes, D + 1, 4) acting on raw features, the last
row the bias: deltas = features @ w[:-1] + w[-1].
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features import mean_norm_scale
from sppnet_jax.errors import ConfigError, DataError



def _namespace(*arrays):
  """jax.numpy if any argument is a JAX array (or tracer), else NumPy: the
  detector decodes on the device, training encodes on the host."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _centres_sizes(b):
  h, w = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
  return b[..., 0] + 0.5 * h, b[..., 1] + 0.5 * w, h, w


def encode(proposals, targets):
  """(..., 4) proposal and target boxes -> (..., 4) deltas (t_y, t_x, t_h, t_w).

  Every box needs a positive height and width (log sizes); with NumPy inputs a
  DataError says otherwise, with JAX inputs such boxes give inf or NaN.
  """
  xp = _namespace(proposals, targets)
  p, g = xp.asarray(proposals), xp.asarray(targets)
  dtype = xp.result_type(p.dtype, g.dtype, xp.float32)
  p, g = p.astype(dtype), g.astype(dtype)
  if xp is np:
    for name, b in (('proposals', p), ('targets', g)):
      if b.shape[-1:] != (4,):
        raise DataError(f'{name} must be (..., 4) boxes, got shape {b.shape}')
      if not np.all((b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])):
        raise DataError(f'{name} include boxes of zero or negative height or '
                        'width: drop them before encoding regression targets')
  p_cy, p_cx, p_h, p_w = _centres_sizes(p)
  g_cy, g_cx, g_h, g_w = _centres_sizes(g)
  return xp.stack([(g_cy - p_cy) / p_h, (g_cx - p_cx) / p_w,
                   xp.log(g_h / p_h), xp.log(g_w / p_w)], -1)


def decode(proposals, deltas):
  """(..., 4) proposal boxes and deltas (t_y, t_x, t_h, t_w) -> (..., 4) boxes.

  The inverse of `encode`; zero deltas return the proposals. Not clipped to the
  image: the authors clip after decoding (`boxes.clip_to_image`).
  """
  xp = _namespace(proposals, deltas)
  p, d = xp.asarray(proposals), xp.asarray(deltas)
  dtype = xp.result_type(p.dtype, d.dtype, xp.float32)
  p, d = p.astype(dtype), d.astype(dtype)
  p_cy, p_cx, p_h, p_w = _centres_sizes(p)
  cy, cx = p_cy + d[..., 0] * p_h, p_cx + d[..., 1] * p_w
  h, w = p_h * xp.exp(d[..., 2]), p_w * xp.exp(d[..., 3])
  return xp.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], -1)


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
                 encode(boxes[indices], gt_boxes[best[indices]]),
                 gt_classes[best[indices]].astype(np.int64),
                 best_iou[indices].astype(np.float32))


@dataclasses.dataclass(frozen=True)
class BoxRegressor:
  """Per-class ridge regressors on raw features.

  weights: (num_classes, D + 1, 4) float64, the last row the bias, the feature
    scale and target means folded in; all zero for a class without samples.
  num_samples: (num_classes,) training samples per class.
  feature_scale, ridge: what `fit` used, for the record.
  """
  weights: np.ndarray
  num_samples: np.ndarray
  feature_scale: float
  ridge: float

  @property
  def num_classes(self) -> int:
    return self.weights.shape[0]


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
    deltas: (N, 4) their `encode`d targets.
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
    A BoxRegressor whose `predict` gives deltas for raw features.
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


def predict(model: BoxRegressor, features, classes) -> np.ndarray:
  """(N, D) raw features and (N,) classes -> (N, 4) float64 deltas of each
  box's class regressor; `decode` them onto the boxes."""
  features = np.asarray(features)
  classes = np.asarray(classes).reshape(-1)
  dim = model.weights.shape[1] - 1
  if features.ndim != 2 or features.shape[1] != dim:
    raise DataError(f'features must be (N, {dim}) for this regressor, got '
                    f'shape {features.shape}')
  if classes.shape[0] != features.shape[0]:
    raise DataError(f'{features.shape[0]} feature rows but {classes.shape[0]} '
                    'classes: give one class per row')
  if classes.size and (classes.min() < 0 or classes.max() >= model.num_classes):
    raise DataError(f'classes range over [{classes.min()}, {classes.max()}], '
                    f'outside [0, {model.num_classes})')
  out = np.zeros((features.shape[0], 4))
  for c in np.unique(classes):
    rows = classes == c
    w = model.weights[c]
    out[rows] = features[rows].astype(np.float64) @ w[:dim] + w[dim]
  return out
