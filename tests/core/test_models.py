"""ZF-5 geometry, parameter counts, LRN and ceil-mode pooling against hand-computed
values and NumPy formulas."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import LocalResponseNorm, SPPNet, ZFNet, spatial_pyramid_pool
from sppnet_jax.core.layers import max_pool_ceil
from sppnet_jax.core.architectures import conv5_size, min_input_size
from sppnet_jax.core.zf5 import count_params


def _shapes(model, size):
  logits, variables = jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                                     train=False))
  return variables['params'], logits


def test_parameter_counts_match_the_paper_nets():
  params, logits = _shapes(SPPNet(), 224)
  assert count_params(params) == 77_037_672 and logits.shape == (1, 1000)
  params, logits = _shapes(ZFNet(), 224)
  assert count_params(params) == 62_357_608 and logits.shape == (1, 1000)
  params, _ = _shapes(SPPNet(num_classes=10), 224)
  assert params['fc8']['kernel'].shape == (4096, 10)
  assert params['fc6']['kernel'].shape == (12800, 4096)


def test_layer_geometry_at_224_and_180():
  # Hand-computed: 224 -> conv1 110 -> pool1 55 -> conv2 26 -> pool2 13;
  #                180 -> 88 -> 44 -> 20 -> 10.
  for size, expected in [(224, (110, 55, 26, 13, 13)), (180, (88, 44, 20, 10, 10))]:
    model = SPPNet(width_multiplier=0.25, fc_dim=8, num_classes=3)
    x = jnp.zeros((1, size, size, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    _, state = model.apply(variables, x, train=False, capture_intermediates=True)
    inter = state['intermediates']
    assert inter['conv1']['__call__'][0].shape[1] == expected[0]
    assert inter['conv2']['__call__'][0].shape[1] == expected[2]
    assert inter['conv5']['__call__'][0].shape[1:3] == (expected[4], expected[4])
    assert conv5_size(size) == expected[3]


def test_spp_accepts_any_size_from_the_minimum():
  assert min_input_size() == 31  # 31 -> conv1 14 -> pool1 7 -> conv2 2 -> pool2 1
  model = SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=5)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False)
  for shape in [(31, 31), (31, 97), (150, 45), (224, 224)]:
    out = model.apply(variables, jnp.zeros((2,) + shape + (3,)), train=False)
    assert out.shape == (2, 5)
  with pytest.raises(ValueError, match='at least 31x31'):
    model.apply(variables, jnp.zeros((1, 30, 64, 3)), train=False)


def test_zfnet_rejects_other_sizes():
  model = ZFNet(width_multiplier=0.1, fc_dim=8, num_classes=5)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False))
  with pytest.raises(ValueError, match='224x224 images only'):
    model.apply(variables, jnp.zeros((1, 180, 180, 3)), train=False)


def _numpy_lrn_within(x, size=3, alpha=5e-5, beta=0.75):
  n, h, w, c = x.shape
  pad = np.pad(x ** 2, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.empty_like(x)
  for i in range(h):
    for j in range(w):
      mean = pad[:, i:i + size, j:j + size, :].sum(axis=(1, 2)) / 9.0
      out[:, i, j, :] = x[:, i, j, :] / (1 + alpha * mean) ** beta
  return out


def _numpy_lrn_across(x, size=5, alpha=1e-4, beta=0.75):
  c = x.shape[-1]
  out = np.empty_like(x)
  for k in range(c):
    lo, hi = max(0, k - size // 2), min(c, k + size // 2 + 1)
    mean = (x[..., lo:hi] ** 2).sum(-1) / size
    out[..., k] = x[..., k] / (1 + alpha * mean) ** beta
  return out


def test_lrn_matches_the_formula():
  # Large values so the normalisation is far from the identity.
  x = np.random.default_rng(0).normal(0, 300, (2, 6, 5, 7)).astype(np.float64)
  got = LocalResponseNorm().apply({}, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, _numpy_lrn_within(x), rtol=1e-5)
  assert not np.allclose(_numpy_lrn_within(x), x, rtol=1e-2)
  got = LocalResponseNorm('across_channel', size=5, alpha=1e-4).apply(
      {}, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, _numpy_lrn_across(x), rtol=1e-5)


def test_ceil_mode_pooling():
  # 6 wide, 3x3 stride 2: ceil((6-3)/2)+1 = 3 windows; the last one sees columns 4,5.
  x = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1) * -1.0  # max at top-left
  got = np.asarray(max_pool_ceil(jnp.asarray(x)))[0, ..., 0]
  starts = [0, 2, 4]
  expected = [[x[0, r:r + 3, c:c + 3, 0].max() for c in starts] for r in starts]
  np.testing.assert_array_equal(got, expected)
  assert max_pool_ceil(jnp.zeros((1, 110, 110, 2))).shape[1:3] == (55, 55)
  assert max_pool_ceil(jnp.zeros((1, 26, 20, 2))).shape[1:3] == (13, 10)


def test_stages_compose_to_the_network():
  """features -> pool5 -> head is the network, stage by stage."""
  for model, size in ((SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=5), 80),
                      (ZFNet(width_multiplier=0.1, fc_dim=8, num_classes=5,
                             image_size=64), 64)):
    x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    conv5 = model.apply(variables, x, method='features')
    # conv5: 256 channels at width 0.1 -> 26.
    assert conv5.shape == (2, conv5_size(size), conv5_size(size), 26)
    vector = model.apply(variables, conv5, method='pool5')
    assert vector.shape == (2, model.pool5_dim())
    logits = model.apply(variables, vector, train=False, method='head')
    np.testing.assert_array_equal(logits, model.apply(variables, x, train=False))
  # SPP's pool5 of a conv5 map is the pyramid of that map (one image's windows
  # can be pooled from its conv5 alone).
  spp = SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=5)
  x = jax.random.normal(jax.random.key(2), (1, 120, 120, 3))
  variables = spp.init(jax.random.key(0), x, train=False)
  window = spp.apply(variables, x, method='features')[:, 1:5, 0:3]
  np.testing.assert_array_equal(spp.apply(variables, window, method='pool5'),
                                spatial_pyramid_pool(window, (6, 3, 2, 1)))


def test_parameter_names_and_shapes_are_those_of_the_earlier_layout():
  """Recorded from the monolithic network before the stages were split
  (tests/data/zf5_parameters.json, written by commit bde846c's code)."""
  with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data',
                         'zf5_parameters.json')) as f:
    recorded = json.load(f)
  for name, model in (('sppnet', SPPNet()), ('zfnet', ZFNet())):
    params, _ = _shapes(model, 224)
    flat = {'/'.join(k.key for k in path): list(v.shape)
            for path, v in jax.tree_util.tree_leaves_with_path(params)}
    assert flat == recorded[name]['params']
    assert count_params(params) == recorded[name]['count']
