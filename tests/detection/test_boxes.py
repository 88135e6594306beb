"""Box conventions: hand-computed conversions at the library's edges, IoU
and R-CNN's box deltas against references written here."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax.detection import boxes
from sppnet_jax.errors import DataError


def test_voc_pixels_are_one_based_and_inclusive():
  # VOC pixels 1..224 across and 11..20 down: 224 wide, 10 high.
  b = boxes.from_voc([[1, 11, 224, 20]])
  np.testing.assert_array_equal(b, [[10, 0, 20, 224]])
  assert boxes.areas(b)[0] == 224 * 10
  np.testing.assert_array_equal(boxes.to_voc(b), [[1, 11, 224, 20]])
  # A one-pixel VOC box (x 5..5, y 7..7) covers [4, 5) x [6, 7).
  np.testing.assert_array_equal(boxes.from_voc([5, 7, 5, 7]), [6, 4, 7, 5])


def test_coco_xywh():
  b = boxes.from_coco([[2.5, 4, 10, 3]])
  np.testing.assert_array_equal(b, [[4, 2.5, 7, 12.5]])
  np.testing.assert_array_equal(boxes.to_coco(b), [[2.5, 4, 10, 3]])
  # The same object in both files: VOC (3, 5, 12, 7) is COCO [2, 4, 10, 3].
  np.testing.assert_array_equal(boxes.from_voc([3, 5, 12, 7]),
                                boxes.from_coco([2, 4, 10, 3]))


def test_clip_and_areas():
  b = np.array([[-3, -2, 5, 50], [10, 10, 12, 9], [40, 0, 45, 4]], np.float32)
  clipped = boxes.clip_to_image(b, 30, 20)
  np.testing.assert_array_equal(
      clipped, [[0, 0, 5, 20], [10, 10, 12, 9], [30, 0, 30, 4]])
  np.testing.assert_array_equal(boxes.areas(clipped), [100, 0, 0])


def test_xyxy_is_the_column_swap():
  np.testing.assert_array_equal(boxes.from_xyxy([[1, 2, 3, 4]]), [[2, 1, 4, 3]])
  np.testing.assert_array_equal(boxes.to_xyxy([[2, 1, 4, 3]]), [[1, 2, 3, 4]])


def test_encode_hand_case():
  # Proposal: y 0..10, x 0..20 -> centre (5, 10), size 10 x 20.
  # Target: y 2..12, x 4..44 -> centre (7, 24), size 10 x 40.
  d = boxes.encode_deltas([[0, 0, 10, 20]], [[2, 4, 12, 44]])
  np.testing.assert_allclose(d, [[0.2, 0.7, 0.0, math.log(2)]], rtol=1e-6)
  np.testing.assert_allclose(boxes.decode_deltas([[0, 0, 10, 20]], d),
                             [[2, 4, 12, 44]], rtol=1e-6, atol=1e-5)


def test_decode_hand_case_and_identity():
  # Centre (15, 5), size 10 x 10; shift by half a height down, width x e.
  b = np.array([[10, 0, 20, 10]], np.float32)
  out = boxes.decode_deltas(b, [[0.5, 0.0, 0.0, 1.0]])
  half_w = 5 * math.e
  np.testing.assert_allclose(out, [[15, 5 - half_w, 25, 5 + half_w]], rtol=1e-6)
  np.testing.assert_array_equal(boxes.decode_deltas(b, np.zeros((1, 4))), b)


def _random_boxes(rng, n):
  yx = rng.uniform(0, 400, (n, 2))
  hw = rng.uniform(5, 300, (n, 2))
  return np.concatenate([yx, yx + hw], 1)


def _reference_deltas(p, g):
  """R-CNN's deltas box by box with Python floats (its appendix C)."""
  out = []
  for (py0, px0, py1, px1), (gy0, gx0, gy1, gx1) in zip(p.tolist(),
                                                        g.tolist()):
    ph, pw, gh, gw = py1 - py0, px1 - px0, gy1 - gy0, gx1 - gx0
    out.append([((gy0 + gy1) / 2 - (py0 + py1) / 2) / ph,
                ((gx0 + gx1) / 2 - (px0 + px1) / 2) / pw,
                math.log(gh / ph), math.log(gw / pw)])
  return np.array(out)


def test_numpy_and_jax_deltas_match_a_box_by_box_reference():
  rng = np.random.default_rng(0)
  p, g = _random_boxes(rng, 500), _random_boxes(rng, 500)
  reference = _reference_deltas(p, g)
  d = boxes.encode_deltas(p, g)
  assert d.dtype == np.float64
  np.testing.assert_allclose(d, reference, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(boxes.decode_deltas(p, reference), g, rtol=1e-12,
                             atol=1e-9)
  # On device arrays, jitted, in float32: the same reference to float32
  # precision (inputs rounded to float32 first).
  p32, g32 = p.astype(np.float32), g.astype(np.float32)
  d_jax = jax.jit(boxes.encode_deltas)(jnp.asarray(p32), jnp.asarray(g32))
  assert isinstance(d_jax, jax.Array) and d_jax.dtype == jnp.float32
  np.testing.assert_allclose(d_jax, _reference_deltas(p32, g32), rtol=1e-4,
                             atol=1e-5)
  back = jax.jit(boxes.decode_deltas)(jnp.asarray(p32),
                                      jnp.asarray(reference, jnp.float32))
  np.testing.assert_allclose(back, g, rtol=1e-4, atol=1e-2)


def test_encode_rejects_degenerate_boxes():
  with pytest.raises(DataError, match='zero or negative'):
    boxes.encode_deltas([[0, 0, 10, 0]], [[0, 0, 10, 10]])
  with pytest.raises(DataError, match='zero or negative'):
    boxes.encode_deltas([[0, 0, 10, 10]], [[5, 0, 4, 10]])
