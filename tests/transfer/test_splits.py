"""The Caltech101 split rule and mean per-class accuracy."""

import numpy as np
import pytest

from sppnet_jax.transfer import splits
from sppnet_jax.errors import DataError


def _labels():
  # Class sizes 31 (Caltech's smallest), 45, 80 and 120, shuffled together.
  labels = np.repeat(np.arange(4), [31, 45, 80, 120])
  return np.random.default_rng(1).permutation(labels)


def test_counts_disjoint_and_seeded():
  labels = _labels()
  for split in range(10):
    train, test = splits.class_split(labels, train_per_class=30,
                                     test_per_class=50, seed=7, split=split)
    assert not set(train) & set(test)
    for c, size in enumerate([31, 45, 80, 120]):
      assert np.sum(labels[train] == c) == 30
      assert np.sum(labels[test] == c) == min(50, size - 30)
    again = splits.class_split(labels, train_per_class=30, test_per_class=50,
                               seed=7, split=split)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], test)
  first = splits.class_split(labels, train_per_class=30, test_per_class=50,
                             seed=7, split=0)
  second = splits.class_split(labels, train_per_class=30, test_per_class=50,
                              seed=7, split=1)
  other_seed = splits.class_split(labels, train_per_class=30,
                                  test_per_class=50, seed=8, split=0)
  assert not np.array_equal(first[0], second[0])
  assert not np.array_equal(first[0], other_seed[0])


def test_every_image_is_drawn_evenly():
  # Over many splits each image of the 45-image class trains about 30/45 of
  # the time: the draw is a uniform permutation, not a fixed prefix.
  labels = _labels()
  members = np.flatnonzero(labels == 1)
  counts = np.zeros(len(labels))
  for split in range(300):
    train, _ = splits.class_split(labels, train_per_class=30,
                                  test_per_class=50, seed=0, split=split)
    counts[train] += 1
  assert np.all(np.abs(counts[members] / 300 - 30 / 45) < 0.12)


def test_too_small_a_class_is_refused():
  with pytest.raises(DataError, match='class 0 has 30 images'):
    splits.class_split(np.repeat([0, 1], [30, 40]), train_per_class=30,
                       test_per_class=50, seed=0, split=0)


def test_mean_class_accuracy():
  # Class 0: 1 of 2 right, class 1: 3 of 3 right -> (0.5 + 1) / 2.
  assert splits.mean_class_accuracy([0, 1, 1, 1, 1], [0, 0, 1, 1, 1]) == (
      pytest.approx(0.75))
