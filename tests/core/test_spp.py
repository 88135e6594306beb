"""Spatial pyramid pooling against a brute-force NumPy loop over the bin rule."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import spatial_pyramid_pool
from sppnet_jax.core.spp import spp_output_dim


def brute_force_spp(x: np.ndarray, levels) -> np.ndarray:
  """The paper's appendix rule, written out: bin i of n over a covers
  [floor(i*a/n), ceil((i+1)*a/n)), max over the rectangle, levels flattened in
  (row, column, channel) order and concatenated in the order given."""
  n_batch, height, width, channels = x.shape
  out = []
  for n in levels:
    level = np.zeros((n_batch, n, n, channels), x.dtype)
    for i in range(n):
      h0, h1 = math.floor(i * height / n), math.ceil((i + 1) * height / n)
      for j in range(n):
        w0, w1 = math.floor(j * width / n), math.ceil((j + 1) * width / n)
        level[:, i, j, :] = x[:, h0:h1, w0:w1, :].max(axis=(1, 2))
    out.append(level.reshape(n_batch, -1))
  return np.concatenate(out, axis=1)


def test_every_square_size_and_level():
  rng = np.random.default_rng(0)
  pool = jax.jit(spatial_pyramid_pool, static_argnums=1)
  for a in range(1, 33):
    x = rng.standard_normal((2, a, a, 3)).astype(np.float32)
    levels = tuple(range(1, 9))
    got = np.asarray(pool(jnp.asarray(x), levels))
    np.testing.assert_array_equal(got, brute_force_spp(x, levels), err_msg=f'a={a}')


@pytest.mark.parametrize('shape', [(1, 7), (13, 10), (10, 13), (5, 31), (2, 3),
                                   (17, 6)])
def test_non_square_maps(shape):
  x = np.random.default_rng(1).standard_normal((3,) + shape + (4,)).astype(np.float32)
  levels = (6, 3, 2, 1)
  got = np.asarray(spatial_pyramid_pool(jnp.asarray(x), levels))
  np.testing.assert_array_equal(got, brute_force_spp(x, levels))


def test_fixed_length_whatever_the_size():
  for shape in [(13, 13), (10, 10), (1, 1), (40, 23)]:
    x = jnp.ones((2,) + shape + (256,))
    assert spatial_pyramid_pool(x).shape == (2, 12800)
  assert spp_output_dim(256, (6, 3, 2, 1)) == 12800


def test_quick_recipe_counterexample_is_handled():
  """10x10 at n=6: the 'window=ceil(a/n), stride=floor(a/n)' recipe gives 5x5
  bins; the exact rule gives 6x6 with the hand-computed edges below."""
  x = np.arange(100, dtype=np.float32).reshape(1, 10, 10, 1)
  got = np.asarray(spatial_pyramid_pool(jnp.asarray(x), (6,))).reshape(6, 6)
  ends = [2, 4, 5, 7, 9, 10]  # ceil((i+1)*10/6) - 1 is each bin's last row/column
  expected = np.array([[10 * (r - 1) + (c - 1) for c in ends] for r in ends])
  np.testing.assert_array_equal(got, expected)


def test_gradient_lands_on_the_argmax():
  rng = np.random.default_rng(2)
  x = rng.permutation(10 * 7 * 2).astype(np.float32).reshape(1, 10, 7, 2)
  levels = (6, 3, 2, 1)
  weights = rng.standard_normal(spp_output_dim(2, levels)).astype(np.float32)
  grad = np.asarray(jax.grad(
      lambda v: jnp.dot(spatial_pyramid_pool(v, levels)[0], weights))(jnp.asarray(x)))
  expected = np.zeros_like(x)  # Each output's weight flows to its bin's arg-max.
  k = 0
  for n in levels:
    for i in range(n):
      h0, h1 = math.floor(i * 10 / n), math.ceil((i + 1) * 10 / n)
      for j in range(n):
        w0, w1 = math.floor(j * 7 / n), math.ceil((j + 1) * 7 / n)
        for c in range(2):
          window = x[0, h0:h1, w0:w1, c]
          r, s = np.unravel_index(np.argmax(window), window.shape)
          expected[0, h0 + r, w0 + s, c] += weights[k]
          k += 1
  np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)


def test_bad_input_is_a_clear_error():
  with pytest.raises(ValueError, match='NHWC'):
    spatial_pyramid_pool(jnp.ones((4, 4, 3)))
  with pytest.raises(ValueError, match='level'):
    spatial_pyramid_pool(jnp.ones((1, 4, 4, 3)), (0,))
