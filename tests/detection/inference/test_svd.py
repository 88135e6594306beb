"""Truncated SVD of the head against references written here: the
Eckart-Young error of a rank-r approximation from scipy's gesvd singular
values (another LAPACK routine than numpy's), the full-rank factors equal to
the layer, hand-scaled ranks, and the factored head's outputs against the
layer computed with the reference approximation."""

import numpy as np
import pytest
import scipy.linalg

import jax
import jax.numpy as jnp

from sppnet_jax.core.zf5 import SPPNet
from sppnet_jax.detection.config import base_config, validate_config
from sppnet_jax.detection.inference import head, svd
from sppnet_jax.detection.inference.box_head import HeadBoxRegressor
from sppnet_jax.errors import ConfigError


def _kernel(rows=300, cols=120, seed=0):
  return np.random.default_rng(seed).standard_normal((rows, cols)).astype(
      np.float32)


@pytest.mark.parametrize('rank', [1, 7, 40, 119])
def test_factors_are_the_best_rank_r_approximation(rank):
  kernel = _kernel()
  first, second = svd.factor(kernel, rank)
  assert first.shape == (300, rank) and second.shape == (rank, 120)
  u, s, vt = scipy.linalg.svd(kernel.astype(np.float64), full_matrices=False,
                              lapack_driver='gesvd')
  reference = (u[:, :rank] * s[:rank]) @ vt[:rank]
  np.testing.assert_allclose(first.astype(np.float64) @ second, reference,
                             atol=2e-5)
  # Eckart-Young: the error is exactly the discarded singular values.
  error = np.linalg.norm(kernel - first.astype(np.float64) @ second) ** 2
  assert error == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-4, abs=1e-6)


def test_full_rank_factors_are_the_layer():
  kernel = _kernel(50, 80)
  first, second = svd.factor(kernel, 10**6)
  assert first.shape == (50, 50)
  np.testing.assert_allclose(first @ second, kernel, atol=1e-5)


def test_ranks_scale_with_the_head_width():
  assert svd.scaled_ranks((1024, 256), 4096) == (1024, 256)
  assert svd.scaled_ranks((1024, 256), 512) == (128, 32)
  assert svd.scaled_ranks((3, 1), 512) == (1, 1)  # never below 1
  assert svd.scaled_ranks((), 512) == ()
  config = base_config()
  for wrong in ((1024,), (1024, 0), (1024, 256, 64)):
    config.test.svd_ranks = wrong
    with pytest.raises(ConfigError, match='two positive ranks'):
      validate_config(config)


def _head(fc_dim=48):
  model = SPPNet(num_classes=5, width_multiplier=0.25, fc_dim=fc_dim)
  params = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                      train=False)['params']
  return model, head.head_params(params)


def test_the_factored_head_computes_the_approximated_layers():
  model, params = _head()
  pooled = np.random.default_rng(1).standard_normal(
      (16, params['fc6']['kernel'].shape[0])).astype(np.float32)
  factors = svd.factor_head(params, (20, 8))
  assert set(factors) == {'fc6', 'fc7'}
  got = head.layer_outputs(model, params, pooled, 0, 16, ('fc6', 'fc7'),
                           factors)
  # The reference: each layer with its rank-r kernel from scipy, in float64.
  x = pooled.astype(np.float64)
  for name, rank in (('fc6', 20), ('fc7', 8)):
    kernel = np.asarray(params[name]['kernel'], np.float64)
    u, s, vt = scipy.linalg.svd(kernel, full_matrices=False,
                                lapack_driver='gesvd')
    x = np.maximum((x @ ((u[:, :rank] * s[:rank]) @ vt[:rank]))
                   + np.asarray(params[name]['bias'], np.float64), 0)
    np.testing.assert_allclose(got[name], x, rtol=1e-4, atol=1e-4)


def test_ranks_that_keep_a_layer_whole_leave_it_unfactored(tmp_path):
  model, params = _head()
  assert svd.factor_head(params, (48, 48)) == {}  # min(fc6, fc7 dims) = 48
  pooled = np.ones((8, params['fc6']['kernel'].shape[0]), np.float32)
  whole = head.layer_outputs(model, params, pooled, 0, 8, ('logits',))
  same = head.layer_outputs(model, params, pooled, 0, 8, ('logits',),
                            svd.factor_head(params, (48, 48)))
  np.testing.assert_array_equal(whole['logits'], same['logits'])


def test_factors_are_stored_once_and_read_back(tmp_path):
  _, params = _head()
  made = svd.load_or_factor(str(tmp_path), params, (20, 8), step=7)
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'svd_fc6-20_fc7-8_step-7.npz']
  read = svd.load_or_factor(str(tmp_path), {}, (20, 8), step=7)  # no SVD
  for name in ('fc6', 'fc7'):
    for a, b in zip(made[name], read[name]):
      np.testing.assert_array_equal(a, b)


def test_the_end_to_end_box_deltas_run_through_the_factored_layers():
  """HeadBoxRegressor with factors: its deltas come from the fc7 of the
  rank-r layers (scipy in float64 here), in NumPy and traced alike."""
  model, params = _head()
  rng = np.random.default_rng(2)
  pooled = rng.standard_normal(
      (6, params['fc6']['kernel'].shape[0])).astype(np.float32)
  kernel = rng.standard_normal((48, 20)).astype(np.float32)
  bias = rng.standard_normal(20).astype(np.float32)
  classes = np.array([0, 4, 2, 1, 3, 0])
  stds = (0.1, 0.1, 0.2, 0.2)
  x = pooled.astype(np.float64)
  for name, rank in (('fc6', 20), ('fc7', 8)):
    u, s, vt = scipy.linalg.svd(np.asarray(params[name]['kernel'], np.float64),
                                full_matrices=False, lapack_driver='gesvd')
    x = np.maximum(x @ ((u[:, :rank] * s[:rank]) @ vt[:rank])
                   + np.asarray(params[name]['bias'], np.float64), 0)
  want = ((x @ kernel + bias).reshape(6, 5, 4)[np.arange(6), classes]
          * np.asarray(stds))
  regressor = HeadBoxRegressor(model, params, kernel, bias, stds,
                               svd.factor_head(params, (20, 8)))
  np.testing.assert_allclose(regressor(pooled, classes), want, rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(
      regressor.traced(jnp.asarray(pooled), jnp.asarray(classes)), want,
      rtol=1e-4, atol=1e-4)
  whole = HeadBoxRegressor(model, params, kernel, bias, stds)
  assert np.abs(whole(pooled, classes) - want).max() > 1e-2
