"""The per-class linear models the detector applies to region features, as
trained by the training stages and stored in the workdir: the classifiers
(SVMs on one layer, `LinearClassifiers`) and the box regressors
(`BoxRegressor`, on pooled conv5).

Both act on raw features: each folds the feature scale it was trained with
(`training.feature_scale`) into its weights or applies it itself.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.detection import stage_files
from sppnet_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class LinearClassifiers:
  """K linear classifiers on one layer's features scaled by feature_scale:
  score = (feature_scale * x) @ weights + bias."""
  layer: str
  weights: np.ndarray  # (D, K) float32
  bias: np.ndarray  # (K,) float32
  feature_scale: float

  def __call__(self, features):
    """(N, D) features -> (N, K) float32 scores; NumPy, or jax.numpy for
    JAX arrays (traceable)."""
    if isinstance(features, jax.Array):
      return ((self.feature_scale * features.astype(jnp.float32))
              @ jnp.asarray(self.weights) + jnp.asarray(self.bias))
    return (self.feature_scale * np.asarray(features, np.float32)
            ) @ self.weights + self.bias

  def save(self, path: str) -> None:
    stage_files.save_npz(path, layer=np.array(self.layer),
                         weights=self.weights, bias=self.bias,
                         feature_scale=np.float64(self.feature_scale))

  @classmethod
  def load(cls, path: str) -> 'LinearClassifiers':
    f = stage_files.load_npz(path, ('layer', 'weights', 'bias',
                                    'feature_scale'), what='SVM file')
    return cls(str(f['layer']), f['weights'], f['bias'],
               float(f['feature_scale']))


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

  def save(self, path: str) -> None:
    stage_files.save_npz(path, weights=self.weights,
                         num_samples=self.num_samples,
                         feature_scale=np.float64(self.feature_scale),
                         ridge=np.float64(self.ridge))

  @classmethod
  def load(cls, path: str) -> 'BoxRegressor':
    f = stage_files.load_npz(path, ('weights', 'num_samples', 'feature_scale',
                                    'ridge'), what='box-regression file')
    return cls(f['weights'], f['num_samples'], float(f['feature_scale']),
               float(f['ridge']))

  def __call__(self, features, classes) -> np.ndarray:
    """`predict(self, features, classes)`."""
    return predict(self, features, classes)


def predict(model: BoxRegressor, features, classes) -> np.ndarray:
  """(N, D) raw features and (N,) classes -> (N, 4) float64 deltas of each
  box's class regressor; `boxes.decode_deltas` them onto the boxes. JAX
  features give float32 JAX deltas (`predict_traced`)."""
  if isinstance(features, jax.Array):
    return predict_traced(model, features, classes)
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


def predict_traced(model: BoxRegressor, features, classes):
  """`predict` in jax.numpy, traceable, float32 (the exported detector's):
  (N, D) features and (N,) int classes in [0, num_classes) -> (N, 4)
  deltas, each row its class's regressor (weights gathered per row)."""
  dim = model.weights.shape[1] - 1
  weights = jnp.asarray(model.weights, jnp.float32)[classes]  # (N, D + 1, 4)
  return (jnp.einsum('nd,ndk->nk', features.astype(jnp.float32),
                     weights[:, :dim], precision='highest') + weights[:, dim])
