"""roi_spatial_pyramid_pool against spatial_pyramid_pool on the cut-out cells and
against a brute-force loop written here, exactly; padding, batching, jit with
traced boxes, and the gradient against finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import roi_spatial_pyramid_pool, spatial_pyramid_pool
from sppnet_jax.core import compile_count
from sppnet_jax.core.roi_spp import table_bound

LEVELS = (6, 3, 2, 1)


def _brute_force(f: np.ndarray, box, levels) -> np.ndarray:
  """Bin i of n over a side h covers [floor(i*h/n), ceil((i+1)*h/n)) of the box."""
  y0, x0, y1, x1 = (int(v) for v in box)
  h, w = y1 - y0, x1 - x0
  out = []
  for n in levels:
    for i in range(n):
      for j in range(n):
        rows = slice(y0 + math.floor(i * h / n), y0 + math.ceil((i + 1) * h / n))
        cols = slice(x0 + math.floor(j * w / n), x0 + math.ceil((j + 1) * w / n))
        out.append(f[rows, cols].max(axis=(0, 1)))
  return np.concatenate(out)


def _random_boxes(rng, height, width, count):
  """Random boxes plus the special ones: 1-cell, full map, each border."""
  boxes = [(0, 0, height, width), (0, 0, 1, 1), (height - 1, width - 1, height, width),
           (0, 0, 1, width), (height - 1, 0, height, width), (0, 0, height, 1),
           (0, width - 1, height, width)]
  while len(boxes) < count:
    y0, x0 = rng.integers(0, height), rng.integers(0, width)
    boxes.append((y0, x0, rng.integers(y0 + 1, height + 1),
                  rng.integers(x0 + 1, width + 1)))
  return np.array(boxes, np.int32)


@pytest.mark.parametrize('height, width, count', [
    (13, 13, 300), (42, 42, 300), (1, 1, 10), (7, 3, 150), (5, 29, 150),
    (35, 53, 150)])
def test_equals_the_pyramid_of_the_cut_out_cells_and_a_brute_force_loop(
    height, width, count):
  rng = np.random.default_rng(height * 100 + width)
  # Few distinct values: many ties, which a max must still get exactly right.
  f = rng.integers(-50, 50, (height, width, 4)).astype(np.float32)
  boxes = _random_boxes(rng, height, width, count)
  got = np.asarray(jax.jit(roi_spatial_pyramid_pool)(f, boxes))
  assert got.shape == (count, 4 * 50)
  for r, box in enumerate(boxes):
    np.testing.assert_array_equal(got[r], _brute_force(f, box, LEVELS),
                                  err_msg=str(box))
  for r, (y0, x0, y1, x1) in enumerate(boxes):
    np.testing.assert_array_equal(
        got[r], np.asarray(spatial_pyramid_pool(f[None, y0:y1, x0:x1], LEVELS))[0])


def test_other_levels_and_boxes_smaller_than_the_level():
  rng = np.random.default_rng(1)
  f = rng.normal(size=(9, 11, 3)).astype(np.float32)
  boxes = _random_boxes(rng, 9, 11, 100)
  for levels in ((5,), (4, 1), (8, 7, 2)):
    got = np.asarray(roi_spatial_pyramid_pool(f, boxes, levels))
    for r, box in enumerate(boxes):
      np.testing.assert_array_equal(got[r], _brute_force(f, box, levels))


def test_padded_boxes_are_zeros_and_the_others_unchanged():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(10, 10, 3)).astype(np.float32) - 5  # all negative
  boxes = _random_boxes(rng, 10, 10, 8)
  boxes[5:] = 0  # padding: (0, 0, 0, 0)
  valid = np.arange(8) < 5
  got = np.asarray(roi_spatial_pyramid_pool(f, boxes, valid=valid))
  assert not got[5:].any()
  for r in range(5):
    np.testing.assert_array_equal(got[r], _brute_force(f, boxes[r], LEVELS))


def test_several_maps_with_an_image_index():
  rng = np.random.default_rng(3)
  maps = rng.normal(size=(3, 8, 6, 2)).astype(np.float32)
  boxes = _random_boxes(rng, 8, 6, 30)
  index = rng.integers(0, 3, 30)
  got = np.asarray(roi_spatial_pyramid_pool(maps, boxes, image_index=index))
  for r in range(30):
    np.testing.assert_array_equal(got[r], _brute_force(maps[index[r]], boxes[r],
                                                       LEVELS))


def test_traced_boxes_compile_once_per_box_count_and_map_shape():
  def pool_boxes(f, b):
    return roi_spatial_pyramid_pool(f, b)

  pool = jax.jit(pool_boxes)
  rng = np.random.default_rng(4)
  f = jnp.asarray(rng.normal(size=(13, 13, 8)), jnp.float32)
  with compile_count.compilations() as compiled:
    for _ in range(3):  # other boxes, same count: no new compilation
      pool(f, _random_boxes(rng, 13, 13, 64)).block_until_ready()
    pool(f, _random_boxes(rng, 13, 13, 32)).block_until_ready()
    pool(f[:10], _random_boxes(rng, 10, 13, 32)).block_until_ready()
  assert compiled.count('pool_boxes') == 3, compiled


def test_gradient_with_respect_to_the_map_matches_finite_differences():
  rng = np.random.default_rng(5)
  with jax.enable_x64():
    # Distinct values, so that a small step moves no maximum elsewhere.
    f = jnp.asarray(rng.permutation(6 * 5 * 2).reshape(6, 5, 2) / 7.0, jnp.float64)
    boxes = jnp.asarray(_random_boxes(rng, 6, 5, 12))
    weights = jnp.asarray(rng.normal(size=(12, 2 * 50)))
    loss = jax.jit(lambda m: jnp.sum(weights * roi_spatial_pyramid_pool(m, boxes)))
    grad = np.asarray(jax.grad(loss)(f))
    eps = 1e-4
    numeric = np.zeros_like(grad)
    for index in np.ndindex(f.shape):
      step = jnp.zeros_like(f).at[index].set(eps)
      numeric[index] = (loss(f + step) - loss(f - step)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)
  assert np.abs(grad).sum() > 0


@pytest.mark.parametrize('height, width', [(42, 56), (74, 99), (9, 5)])
def test_a_table_cut_to_the_largest_box_gives_the_same_pooling(height, width):
  """max_box_cells = the largest box's sides, exactly and as `table_bound`
  rounds them, on boxes of at most a third of the map: every bin still reads
  inside the (smaller) table."""
  rng = np.random.default_rng(height)
  f = rng.integers(-50, 50, (height, width, 3)).astype(np.float32)
  boxes = _random_boxes(rng, max(1, height // 3), max(1, width // 3), 200)[7:]
  boxes[:, 0::2] += rng.integers(0, height - height // 3 + 1)
  boxes[:, 1::2] += rng.integers(0, width - width // 3 + 1)
  sides = tuple(int(n) for n in (boxes[:, 2:] - boxes[:, :2]).max(0))
  bound = table_bound(*sides)
  assert bound[0] >= sides[0] and bound[1] >= sides[1]
  for cells in (sides, bound):
    got = np.asarray(roi_spatial_pyramid_pool(f, boxes, max_box_cells=cells))
    for r, box in enumerate(boxes):
      np.testing.assert_array_equal(got[r], _brute_force(f, box, LEVELS),
                                    err_msg=f'{box} {cells}')
