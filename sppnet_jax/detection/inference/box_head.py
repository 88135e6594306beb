"""Box regression by the detector's own sibling layer (end-to-end training's
`bbox_pred` on fc7), in the shape of `linear_models.BoxRegressor`, so that
`Detector.detect_from_maps` applies it to the boxes NMS keeps exactly as it
applies the pipeline's ridge regressors: deltas = (fc7 @ W + b) of the box's
class, times the target stds training divided by.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.detection.features.pooling import padded_count
from sppnet_jax.detection.inference import head
from sppnet_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class HeadBoxRegressor:
  """model/params: the detector's network and its fc6-fc8; kernel (D, 4 K)
  and bias (4 K,): bbox_pred; stds (4,): the targets' normalisation;
  factors: fc6/fc7 as `svd.factor_head` factors (None: whole), so that the
  deltas come from the same fc7 as the scores."""
  model: object
  params: dict
  kernel: np.ndarray
  bias: np.ndarray
  stds: tuple
  factors: dict | None = None

  @property
  def num_classes(self) -> int:
    return self.kernel.shape[1] // 4

  def __call__(self, features, classes) -> np.ndarray:
    """(N, D) pooled rows and (N,) classes (0..K-1) -> (N, 4) float64
    deltas for `boxes.decode_deltas`; JAX rows give float32 JAX deltas
    (`traced`, the exported detector's)."""
    if isinstance(features, jax.Array):
      return self.traced(features, classes)
    features = np.asarray(features, np.float32)
    classes = np.asarray(classes).reshape(-1)
    count = features.shape[0]
    if classes.shape[0] != count:
      raise DataError(f'{count} feature rows but {classes.shape[0]} classes: '
                      'give one class per row')
    if count and (classes.min() < 0 or classes.max() >= self.num_classes):
      raise DataError(f'classes range over [{classes.min()}, {classes.max()}]'
                      f', outside [0, {self.num_classes})')
    size = padded_count(count, 128)  # few compilations
    rows = np.zeros((size, features.shape[1]), np.float32)
    rows[:count] = features
    fc7 = np.asarray(head.layer_outputs(self.model, self.params, rows, 0, size,
                                        ('fc7',), self.factors)['fc7'],
                     np.float64)[:count]
    deltas = (fc7 @ self.kernel.astype(np.float64)
              + self.bias).reshape(count, -1, 4)
    return deltas[np.arange(count), classes] * np.asarray(self.stds)

  def traced(self, features, classes):
    """`__call__` in jax.numpy, traceable, float32: (N, D) pooled rows and
    (N,) int classes in [0, num_classes) -> (N, 4) deltas."""
    count = features.shape[0]
    fc7 = head.layer_outputs(self.model, self.params,
                             features.astype(jnp.float32), 0, count,
                             ('fc7',), self.factors)['fc7'].astype(jnp.float32)
    deltas = (jnp.dot(fc7, jnp.asarray(self.kernel, jnp.float32),
                      precision='highest')
              + jnp.asarray(self.bias, jnp.float32)).reshape(count, -1, 4)
    return (deltas[jnp.arange(count), classes]
            * jnp.asarray(self.stds, jnp.float32))
