"""Multi-scale conv5 and per-box pooling against a per-box loop written here:
the scale by the paper's area rule, the cells by the receptive-field centres,
the pyramid of the cut-out cells; bounded compilations."""

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from sppnet_jax import SPPNet, normalize_images, spatial_pyramid_pool
from sppnet_jax.core import compile_count
from sppnet_jax.detection.features import MultiScaleConv5, pool_boxes
from tests.helpers import conv5_cells

SCALES = (64, 96, 160)
STEP = 32


def _bucket(h, w, short_side):
  scale = short_side / min(h, w)
  return tuple(max(STEP, round(side * scale / STEP) * STEP) for side in (h, w))


def test_each_box_is_pooled_at_its_scale_from_that_scale_s_conv5():
  model = SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=3)
  rng = np.random.default_rng(0)
  params = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                      train=False)['params']
  image = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
  # Boxes of sides 40..100 px; the target area 64^2 (this net's input) spreads
  # them over the scales.
  boxes = []
  for side in (40, 60, 80, 100, 45, 90):
    y, x = rng.integers(0, 100 - side + 1), rng.integers(0, 150 - side + 1)
    boxes.append((y, x, y + side, x + side))
  boxes = np.array(boxes, np.float32)
  extractor = MultiScaleConv5(model, params, SCALES, STEP)
  with compile_count.compilations() as compiled:
    maps = extractor(image)
    got = pool_boxes(maps, boxes, 100, 150, SCALES, box_bucket=4, input_size=64)
    first = len(compiled)
    pool_boxes(extractor(image[::-1].copy()), boxes, 100, 150, SCALES,
               box_bucket=4, input_size=64)  # same shapes: nothing new to compile
  assert compiled.count('conv5_of_image') == len(SCALES), compiled
  assert compiled.count('_pool_padded') <= len(SCALES), compiled
  assert len(compiled) == first, compiled
  chosen = set()
  for r, (y0, x0, y1, x1) in enumerate(boxes):
    area = (y1 - y0) * (x1 - x0)
    k = int(np.argmin([abs(area * (s / 100) ** 2 - 64 ** 2) for s in SCALES]))
    chosen.add(k)
    shape = _bucket(100, 150, SCALES[k])
    resized = np.round(tf.image.resize(image, shape, method='bilinear').numpy())
    conv5 = model.apply({'params': params},
                        normalize_images(resized[None].astype(np.uint8)),
                        method='features')
    fy, fx = shape[0] / 100, shape[1] / 150
    rows = conv5_cells(y0 * fy, y1 * fy, conv5.shape[1])
    cols = conv5_cells(x0 * fx, x1 * fx, conv5.shape[2])
    expected = spatial_pyramid_pool(conv5[:, rows, cols])[0]
    np.testing.assert_array_equal(got[r], np.asarray(expected), err_msg=str(r))
  assert len(chosen) >= 2, chosen
