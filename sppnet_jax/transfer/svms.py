"""The paper's SVM protocol on fixed features (sections 3.2-3.3): features
L2-normalised, one linear SVM per class (one-vs-rest), C chosen by
cross-validation on the training images only.

The SVM is liblinear's L1-loss (hinge) dual solver through scikit-learn
(`detection.training.svm.solve_svm_liblinear`, the detection SVMs' solver),
with equal class weights and liblinear's bias: an extra feature of value 1
whose weight is regularised like the others (the paper used LIBSVM, whose
bias is not regularised; its C is not stated).

Cross-validation: the training images are dealt into `folds` folds by a
seeded permutation; for each C of the grid the SVMs are trained on all
folds but one and scored on that one, and the C with the best mean score is
taken (the smallest C on ties). Multi-label sets (VOC) choose C per class by
its VOC classification AP (folds without a positive of the class are not
scored); multi-class sets (Caltech101) choose one C for all classes by the
mean per-class accuracy of the one-vs-rest prediction (the class of the
highest score).

In VOC's labels an image whose only objects of a class are difficult (0) is
left out of that class's training, as the devkit leaves it out of the
evaluation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sppnet_jax.transfer import splits, voc_ap
from sppnet_jax.detection.training.svm import LinearSvm, solve_svm_liblinear
from sppnet_jax.errors import DataError


def l2_normalise(features) -> np.ndarray:
  """Rows scaled to unit L2 norm (an all-zero row stays zero), float32."""
  x = np.asarray(features, np.float32)
  norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
  return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def train_svm(features, positive, *, c: float, tol: float,
              seed: int) -> LinearSvm:
  """One linear SVM: `positive` (N,) bool, the rest negatives."""
  return solve_svm_liblinear(features, np.where(positive, 1, -1), c=c,
                             positive_weight=1.0, bias_multiplier=1.0,
                             tol=tol, seed=seed).svm


def scores(svms: Sequence[LinearSvm], features) -> np.ndarray:
  """(N, K) decision values of K SVMs."""
  w = np.stack([np.asarray(s.weights, np.float64) for s in svms], axis=1)
  b = np.array([s.bias for s in svms], np.float64)
  return np.asarray(features, np.float64) @ w + b


def folds_of(n: int, folds: int, seed: int) -> np.ndarray:
  """(n,) fold index of each training image, a seeded permutation dealt
  round-robin (fold sizes differ by at most one)."""
  if folds < 2 or folds > n:
    raise DataError(f'cross-validation needs 2..{n} folds, got {folds}')
  fold = np.empty(n, np.int64)
  fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
  return fold


def _best(grid: Sequence[float], means: Sequence[float]) -> float:
  means = np.asarray(means, np.float64)
  if np.all(np.isnan(means)):
    return float(min(grid))
  best = np.nanmax(means)
  return float(min(c for c, m in zip(grid, means) if m == best))


def fit_multilabel(features, ground_truth, *, grid: Sequence[float],
                   folds: int, tol: float, seed: int
                   ) -> tuple[list[LinearSvm], list[float]]:
  """Per class k, an SVM of the images with ground_truth[:, k] = 1 against
  those with -1, its C chosen by cross-validated VOC AP; returns (SVMs, Cs).

  Raises:
    DataError: a class with no positive or no negative training image.
  """
  x = np.asarray(features, np.float32)
  gt = np.asarray(ground_truth)
  fold = folds_of(len(x), folds, seed)
  svms, chosen = [], []
  for k in range(gt.shape[1]):
    use = gt[:, k] != 0
    if not (gt[:, k] > 0).any() or not (gt[:, k] < 0).any():
      raise DataError(f'class {k} has no positive or no negative training '
                      'image: an SVM needs both')
    means = []
    for c in grid:
      aps = []
      for f in range(folds):
        train = use & (fold != f)
        held = fold == f
        labels = gt[train, k] > 0
        if labels.all() or not labels.any() or not (gt[held, k] > 0).any():
          continue
        svm = train_svm(x[train], labels, c=c, tol=tol, seed=seed)
        aps.append(voc_ap.voc_cls_ap(scores([svm], x[held])[:, 0],
                                     gt[held, k]))
      means.append(np.mean(aps) if aps else np.nan)
    chosen.append(_best(grid, means))
    svms.append(train_svm(x[use], gt[use, k] > 0, c=chosen[-1], tol=tol,
                          seed=seed))
  return svms, chosen


def _one_vs_rest(x, labels, classes, c, tol, seed) -> list[LinearSvm]:
  return [train_svm(x, labels == k, c=c, tol=tol, seed=seed) for k in classes]


def predict(svms: Sequence[LinearSvm], classes, features) -> np.ndarray:
  """The class (of `classes`, one per SVM) of the highest score per row."""
  return np.asarray(classes)[np.argmax(scores(svms, features), axis=1)]


def fit_multiclass(features, labels, *, grid: Sequence[float], folds: int,
                   tol: float, seed: int
                   ) -> tuple[list[LinearSvm], np.ndarray, float]:
  """One-vs-rest SVMs of the classes present in `labels`, one C for all
  chosen by cross-validated mean per-class accuracy; returns (SVMs, their
  classes, C). A fold whose training part lacks a class is not scored."""
  x = np.asarray(features, np.float32)
  labels = np.asarray(labels, np.int64).reshape(-1)
  classes = np.unique(labels)
  if len(classes) < 2:
    raise DataError('one-vs-rest SVMs need at least two classes')
  fold = folds_of(len(x), folds, seed)
  means = []
  for c in grid:
    accuracies = []
    for f in range(folds):
      train, held = fold != f, fold == f
      if len(np.unique(labels[train])) != len(classes):
        continue
      svms = _one_vs_rest(x[train], labels[train], classes, c, tol, seed)
      accuracies.append(splits.mean_class_accuracy(
          predict(svms, classes, x[held]), labels[held]))
    means.append(np.mean(accuracies) if accuracies else np.nan)
  best = _best(grid, means)
  return _one_vs_rest(x, labels, classes, best, tol, seed), classes, best
