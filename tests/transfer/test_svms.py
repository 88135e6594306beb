"""The SVM protocol's pieces: normalisation, folds, difficult-only images out
of a class's training, classes that are not 0..K-1, the choice of C."""

import numpy as np
import pytest

from sppnet_jax.transfer import svms


def test_l2_normalise():
  x = svms.l2_normalise([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_folds_are_even_and_seeded():
  fold = svms.folds_of(10, 3, seed=4)
  assert sorted(np.bincount(fold)) == [3, 3, 4]
  np.testing.assert_array_equal(fold, svms.folds_of(10, 3, seed=4))
  assert not np.array_equal(fold, svms.folds_of(10, 3, seed=5))


def _blobs(rng, n):
  labels = rng.integers(0, 2, n)
  x = rng.normal(0, 1, (n, 5)) + 3 * labels[:, None]
  return x.astype(np.float32), labels


def test_difficult_only_images_are_left_out_of_training():
  rng = np.random.default_rng(0)
  x, labels = _blobs(rng, 40)
  gt = np.where(labels > 0, 1, -1)[:, None].astype(np.int8)
  # Extra images marked 0 (difficult only), with features that would pull
  # the SVM if they were trained on.
  extra = np.full((6, 5), 50.0, np.float32)
  fitted, _ = svms.fit_multilabel(
      np.concatenate([x, extra]), np.concatenate([gt, np.zeros((6, 1),
                                                               np.int8)]),
      grid=(1.0,), folds=2, tol=1e-6, seed=0)
  alone, _ = svms.fit_multilabel(x, gt, grid=(1.0,), folds=2, tol=1e-6,
                                 seed=0)
  np.testing.assert_allclose(fitted[0].weights, alone[0].weights, rtol=1e-5,
                             atol=1e-6)
  assert fitted[0].bias == pytest.approx(alone[0].bias, rel=1e-5, abs=1e-6)


def test_multiclass_keeps_the_labels_given():
  rng = np.random.default_rng(1)
  centres = {3: (5, 0), 7: (0, 5), 9: (-5, -5)}
  labels = np.repeat(list(centres), 12)
  x = np.stack([rng.normal(centres[k], 0.5) for k in labels]).astype(
      np.float32)
  fitted, classes, c = svms.fit_multiclass(x, labels, grid=(0.1, 1.0),
                                           folds=3, tol=1e-4, seed=0)
  assert classes.tolist() == [3, 7, 9] and c in (0.1, 1.0)
  np.testing.assert_array_equal(svms.predict(fitted, classes, x), labels)


def test_best_c_prefers_the_smallest_on_ties():
  assert svms._best((10.0, 0.1, 1.0), [0.5, 0.5, 0.4]) == 0.1
  assert svms._best((10.0, 0.1), [np.nan, 0.2]) == 0.1
  assert svms._best((10.0, 0.1), [np.nan, np.nan]) == 0.1
