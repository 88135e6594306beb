"""The one scalar that scales region features for the SVMs and the box
regressors: R-CNN and SPP-net multiply every feature vector by
TARGET_NORM / (the mean L2 norm of the training features), so that their C
and ridge lambda mean what they were tuned for (a mean norm of 20).
"""

import numpy as np

from sppnet_jax.errors import DataError

TARGET_NORM = 20.0


def mean_norm_scale(features, target_norm: float = TARGET_NORM) -> float:
  """target_norm / the mean L2 norm of the (N, D) feature rows: the authors'
  scalar (`spp_scale_features.m`) that makes the average norm 20. Multiply
  training and test features by the same factor."""
  f = np.asarray(features)
  norms = np.sqrt(np.einsum('nd,nd->n', f, f, dtype=np.float64))
  mean = float(norms.mean()) if norms.size else 0.0
  if not mean > 0 or not np.isfinite(mean):
    raise DataError(f'cannot scale features of mean norm {mean}: give at '
                    'least one non-zero, finite feature vector')
  return target_norm / mean
