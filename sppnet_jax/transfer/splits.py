"""Random per-class splits of a multi-class set, as the paper's Caltech101
protocol (section 3.3: 30 training and up to 50 test images per class, 10
random splits, mean per-class accuracy averaged over the splits)."""

import numpy as np

from sppnet_jax.errors import DataError


def class_split(labels, *, train_per_class: int, test_per_class: int,
                seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) sorted indices into `labels` for random split number
  `split`: per class, a permutation drawn from (seed, split, class) gives
  its first `train_per_class` images to training and the next (up to
  `test_per_class`) to testing; disjoint, and the same for the same
  arguments.

  Raises:
    DataError: a class with no more images than `train_per_class` (it would
      have no test image), named.
  """
  labels = np.asarray(labels).reshape(-1)
  if train_per_class < 1 or test_per_class < 1:
    raise DataError(f'a split needs >= 1 training and test image per class, '
                    f'got {train_per_class} and {test_per_class}')
  train, test = [], []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    if len(members) <= train_per_class:
      raise DataError(f'class {c} has {len(members)} images: a split needs '
                      f'more than {train_per_class} (train_per_class) per class')
    rng = np.random.default_rng([int(seed), int(split), int(c)])
    order = members[rng.permutation(len(members))]
    train.append(order[:train_per_class])
    test.append(order[train_per_class:train_per_class + test_per_class])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def mean_class_accuracy(predicted, labels) -> float:
  """The mean over the classes present in `labels` of the fraction of their
  images predicted right (each class weighs the same)."""
  predicted = np.asarray(predicted).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if predicted.shape != labels.shape or not labels.size:
    raise DataError(f'{predicted.size} predictions for {labels.size} labels')
  return float(np.mean([np.mean(predicted[labels == c] == c)
                        for c in np.unique(labels)]))
