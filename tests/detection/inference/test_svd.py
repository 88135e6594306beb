"""Low-rank heads against references written here: for 'weights', the
Eckart-Young error of a rank-r approximation from scipy's gesvd singular
values (another LAPACK routine than numpy's), the full-rank factors equal to
the layer, and the factored head's outputs against the layer computed with
the reference approximation; for 'responses', scikit-learn's PCA of the
layers' outputs on the samples (the reconstruction the factors must compute),
layer after layer; hand-scaled ranks; the sampling of regions against a
loop written here."""

import numpy as np
import pytest
import scipy.linalg

import jax
import jax.numpy as jnp

from sklearn.decomposition import PCA

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
  config.test.svd_ranks = (1024, 256)
  config.test.svd_method = 'pca'
  with pytest.raises(ConfigError, match='svd_method'):
    validate_config(config)
  config.test.svd_method = 'weights'
  config.test.svd_images = 0
  with pytest.raises(ConfigError, match='svd_images and svd_regions'):
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
      'svd_weights_fc6-20_fc7-8_step-7.npz']
  read = svd.load_or_factor(str(tmp_path), {}, (20, 8), step=7)  # no SVD
  calls = []

  def sample():
    calls.append(1)
    return _samples(params)[0] @ np.asarray(params['fc6']['kernel'])

  fitted = svd.load_or_factor(str(tmp_path), params, (20, 8), step=7,
                              sample=sample, samples='3x5')
  again = svd.load_or_factor(str(tmp_path), {}, (20, 8), step=7,
                             sample=sample, samples='3x5')
  assert len(calls) == 1  # sampled once, when its file was missing
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'svd_responses-3x5_fc6-20_fc7-8_step-7.npz',
      'svd_weights_fc6-20_fc7-8_step-7.npz']
  for first, second in ((made, read), (fitted, again)):
    assert set(first) == set(second) == {'fc6', 'fc7'}
    for name in ('fc6', 'fc7'):
      assert len(first[name]) == 3
      for a, b in zip(first[name], second[name]):
        np.testing.assert_array_equal(a, b)
  assert not np.allclose(made['fc6'][0] @ made['fc6'][1],
                         fitted['fc6'][0] @ fitted['fc6'][1], atol=1e-3)


def _samples(params, count=400, seed=3):
  """Non-negative, correlated pool5-like rows (a few directions dominate, as
  after ReLU and pooling): (count, D) samples and (count // 4, D) new rows
  from the same law."""
  rng = np.random.default_rng(seed)
  dim = params['fc6']['kernel'].shape[0]
  basis = rng.standard_normal((6, dim))
  def draw(n):
    return np.maximum(rng.standard_normal((n, 6)) * [5, 4, 3, 2, 1, 1] @ basis
                      + 0.1 * rng.standard_normal((n, dim)), 0).astype(
                          np.float32)
  return draw(count), draw(count // 4)


def _pca_reconstruction(outputs, new_outputs, rank):
  """scikit-learn's PCA of `outputs` (N, D) at `rank`, then `new_outputs`
  projected on it and mapped back: the rank-r layer's outputs."""
  pca = PCA(n_components=rank, svd_solver='full').fit(outputs)
  return pca.inverse_transform(pca.transform(new_outputs))


def test_response_factors_reconstruct_the_layers_outputs_by_pca():
  rng = np.random.default_rng(4)
  kernel = rng.standard_normal((30, 12)).astype(np.float32)
  bias = rng.standard_normal(12).astype(np.float32)
  x = np.maximum(rng.standard_normal((200, 30)) @ rng.standard_normal(
      (30, 30)), 0)
  new = np.maximum(rng.standard_normal((50, 30)) @ rng.standard_normal(
      (30, 30)), 0)
  first, second, new_bias = svd.factor_responses(kernel, bias, x @ kernel, 4)
  assert first.shape == (30, 4) and second.shape == (4, 12)
  want = _pca_reconstruction(x @ kernel + bias, new @ kernel + bias, 4)
  got = new @ first.astype(np.float64) @ second + new_bias
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
  # At full rank the directions span everything: the layer itself.
  first, second, new_bias = svd.factor_responses(kernel, bias, x @ kernel, 50)
  np.testing.assert_allclose(first @ second, kernel, atol=1e-5)
  np.testing.assert_allclose(new_bias, bias, atol=1e-4)
  with pytest.raises(ValueError, match='do not fit a kernel'):
    svd.factor_responses(kernel, bias, x, 4)


def test_response_factors_of_the_head_fit_fc7_to_the_factored_fc6():
  """fc6 fitted on its own outputs, fc7 on its outputs from the factored
  fc6's ReLU: each a PCA reconstruction (scikit-learn), layer after layer,
  on rows not among the samples."""
  model, params = _head()
  samples, new = _samples(params)
  factors = svd.factor_head(params, (5, 3),
                            samples @ np.asarray(params['fc6']['kernel']))
  got = head.layer_outputs(model, params, new, 0, len(new), ('fc6', 'fc7'),
                           factors)
  fitted, unseen = samples.astype(np.float64), new.astype(np.float64)
  for name, rank in (('fc6', 5), ('fc7', 3)):
    kernel = np.asarray(params[name]['kernel'], np.float64)
    bias = np.asarray(params[name]['bias'], np.float64)
    fitted_out = _pca_reconstruction(fitted @ kernel + bias,
                                     fitted @ kernel + bias, rank)
    unseen = np.maximum(_pca_reconstruction(
        fitted @ kernel + bias, unseen @ kernel + bias, rank), 0)
    fitted = np.maximum(fitted_out, 0)
    np.testing.assert_allclose(got[name], unseen, rtol=1e-3, atol=1e-3)
  # The weights' SVD at the same ranks is another, worse fit on these rows.
  weights = head.layer_outputs(model, params, new, 0, len(new), ('fc7',),
                               svd.factor_head(params, (5, 3)))
  whole = head.layer_outputs(model, params, new, 0, len(new), ('fc7',))
  assert (np.abs(np.asarray(got['fc7']) - whole['fc7']).mean()
          < np.abs(np.asarray(weights['fc7']) - whole['fc7']).mean())


def test_regions_are_sampled_per_image_and_multiplied_by_fc6():
  """Up to `regions_per_image` distinct proposals of each image, by a loop
  here: each pooled row is its box's own vector, so the rows tell which
  boxes were drawn."""
  # Identity on the first four columns: a row's start is its box.
  kernel = np.concatenate([np.eye(4), np.random.default_rng(5).standard_normal(
      (4, 2))], axis=1).astype(np.float32)
  images = [('maps-a', np.arange(40, dtype=np.float32).reshape(10, 4), 5, 6),
            ('maps-b', np.zeros((0, 4), np.float32), 5, 6),
            ('maps-c', 100 + np.arange(12, dtype=np.float32).reshape(3, 4),
             7, 8)]
  seen = []

  def region_pool5(maps, boxes, height, width):
    seen.append((maps, height, width, len(boxes)))
    return boxes  # a box's "pooled vector" is the box itself

  rows = svd.fc6_responses(region_pool5, kernel, iter(images), 4, seed=0)
  assert seen == [('maps-a', 5, 6, 4), ('maps-c', 7, 8, 3)]
  boxes = rows[:, :4]
  np.testing.assert_allclose(rows, boxes @ kernel, rtol=1e-6)
  drawn = {tuple(b) for b in boxes[:4]}
  assert len(drawn) == 4 and drawn <= {tuple(b) for b in images[0][1]}
  np.testing.assert_array_equal(np.sort(boxes[4:], axis=0), images[2][1])
  again = svd.fc6_responses(region_pool5, kernel, iter(images), 4, seed=0)
  np.testing.assert_array_equal(rows, again)
  with pytest.raises(ValueError, match='no image with proposals'):
    svd.fc6_responses(region_pool5, kernel, iter(images[1:2]), 4)


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
