"""`pool_padded` (fixed shapes, traced image size and factors: the exported
detector's pooling) against `pool_boxes` (the live detector's, tested
against the paper's projection in test_pooling.py): the same vectors,
bitwise, over several scales; padding rows are zeros."""

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.detection.features.conv5 import ScaledMap
from sppnet_jax.detection.features.pooling import pool_boxes, pool_padded

SCALES = (64, 96, 160)
OPTIONS = dict(scales=SCALES, levels=(3, 2, 1), input_size=64)


def test_pool_padded_equals_pool_boxes():
  rng = np.random.default_rng(0)
  height, width = 100, 150
  maps = []
  for scale in SCALES:
    h, w = scale * height // 100 // 16 + 1, scale * width // 100 // 16 + 1
    maps.append(ScaledMap(jnp.asarray(rng.normal(size=(h, w, 5)), jnp.float32),
                          scale / height, scale / width))
  y0, x0 = rng.uniform(0, 90, 40), rng.uniform(0, 140, 40)
  boxes = np.stack([y0, x0, np.minimum(y0 + rng.uniform(2, 100, 40), height),
                    np.minimum(x0 + rng.uniform(2, 100, 40), width)],
                   1).astype(np.float32)
  want = pool_boxes(maps, boxes, height, width, **OPTIONS)

  @jax.jit
  def padded(boxes, valid, height, width, factors):
    traced = [ScaledMap(m.conv5, fy, fx) for m, (fy, fx) in zip(maps, factors)]
    return pool_padded(traced, boxes, valid, height, width, **OPTIONS)

  factors = [(np.float32(m.factor_y), np.float32(m.factor_x)) for m in maps]
  valid = np.arange(48) < 40
  got = np.asarray(padded(np.pad(boxes, ((0, 8), (0, 0)), constant_values=7),
                          valid, np.int32(height), np.int32(width), factors))
  np.testing.assert_array_equal(got[:40], want)
  assert not got[40:].any()
