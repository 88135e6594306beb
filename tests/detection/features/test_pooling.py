"""Multi-scale conv5 and per-box pooling against a per-box loop written here:
the scale by the paper's area rule, the cells by the receptive-field centres,
the pyramid of the cut-out cells; bounded compilations."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from sppnet_jax import SPPNet, normalize_images, spatial_pyramid_pool
from sppnet_jax.core import compile_count
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.features.pooling import pool_boxes
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


def test_detector_region_outputs_are_the_fc_layers_of_each_pooled_box():
  """Over scales and chunks of `batch_boxes` rows (a group split in several
  calls, padded), in the boxes' order; asked-for layers only. The reference
  is pool_boxes (checked above) and fc6-fc8 in NumPy."""
  from sppnet_jax.detection.inference.detector import Detector  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.features.pooling import PoolingSettings  # pylint: disable=g-import-not-at-top
  model = SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=3)
  rng = np.random.default_rng(1)
  params = model.init(jax.random.key(1), jnp.zeros((1, 64, 64, 3)),
                      train=False)['params']
  image = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
  sides = rng.uniform(20, 100, (37, 2))
  y0 = rng.uniform(0, 100 - sides[:, 0])
  x0 = rng.uniform(0, 150 - sides[:, 1])
  boxes = np.stack([y0, x0, y0 + sides[:, 0], x0 + sides[:, 1]],
                   1).astype(np.float32)
  maps = MultiScaleConv5(model, params, SCALES, STEP)(image)
  detector = Detector(model, params,
                      PoolingSettings(SCALES, (6, 3, 2, 1), 'paper', 'paper', 64),
                      num_classes=2, batch_boxes=5)
  groups = detector.pooled_groups(maps, boxes, 100, 150)
  assert len(groups) >= 2 and max(len(rows) for rows, _ in groups) > 5
  got = detector.region_outputs(maps, boxes, 100, 150)
  pool5 = pool_boxes(maps, boxes, 100, 150, SCALES, input_size=64)

  def dense(x, name, relu=True):
    y = x @ np.asarray(params[name]['kernel']) + np.asarray(params[name]['bias'])
    return np.maximum(y, 0) if relu else y

  fc6 = dense(pool5, 'fc6')
  fc7 = dense(fc6, 'fc7')
  expected = {'pool5': pool5, 'fc6': fc6, 'fc7': fc7,
              'logits': dense(fc7, 'fc8', relu=False)}
  assert sorted(got) == sorted(expected)
  np.testing.assert_array_equal(got['pool5'], pool5)
  for name in ('fc6', 'fc7', 'logits'):
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5,
                               atol=1e-5, err_msg=name)
  wanted = np.array([36, 0, 5, 5, 17])  # repeats, any order
  np.testing.assert_array_equal(detector.pooled_rows(groups, wanted),
                                pool5[wanted])
  only = detector.region_outputs(maps, boxes, 100, 150, ('logits',))
  assert list(only) == ['logits']
  np.testing.assert_array_equal(only['logits'], got['logits'])
  # The fc work follows the box count, not the groups: the scales' rows are
  # packed into one buffer and cut into ceil(37 / 16) = 3 calls, where one
  # call per group's remainder would need more calls and rows.
  from sppnet_jax.detection.features.pooling import padded_count  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.inference import head  # pylint: disable=g-import-not-at-top
  sizes = []
  real = head.layer_outputs

  def counted(model, params, pooled, start, size, *rest):
    sizes.append(size)
    return real(model, params, pooled, start, size, *rest)

  wide = dataclasses.replace(detector, batch_boxes=16)
  per_group = [padded_count(len(rows[s:s + 16]), 16)
               for rows, _ in groups for s in range(0, len(rows), 16)]
  head.layer_outputs = counted
  try:
    packed = wide.group_outputs(groups, len(boxes), ('logits',))
  finally:
    head.layer_outputs = real
  assert len(sizes) == 3 < len(per_group)
  assert sum(sizes) <= len(boxes) + 8 < sum(per_group)
  np.testing.assert_allclose(packed['logits'], got['logits'], rtol=1e-5,
                             atol=1e-6)
  # The next image's packing writes into the buffer the last one left (no
  # new allocation when the groups need the same shape), and nothing of the
  # rows it held reaches the outputs: the boxes in another order (the same
  # group sizes, other rows at every offset) give their reference values.
  from sppnet_jax.detection.inference import detector as detector_module  # pylint: disable=g-import-not-at-top
  fresh_buffers = []
  real_zeros = detector_module._zeros  # pylint: disable=protected-access

  def counted_zeros(*args):
    fresh_buffers.append(args)
    return real_zeros(*args)

  others = boxes[rng.permutation(len(boxes))]
  detector_module._zeros = counted_zeros  # pylint: disable=protected-access
  try:
    again = detector.region_outputs(maps, others, 100, 150)
  finally:
    detector_module._zeros = real_zeros  # pylint: disable=protected-access
  assert not fresh_buffers
  pool5 = pool_boxes(maps, others, 100, 150, SCALES, input_size=64)
  np.testing.assert_array_equal(again['pool5'], pool5)
  np.testing.assert_allclose(
      again['logits'], dense(dense(dense(pool5, 'fc6'), 'fc7'), 'fc8',
                             relu=False), rtol=1e-5, atol=1e-5)


def test_maps_of_one_padded_shape_share_one_compilation():
  """Maps are padded to multiples of MAP_CELLS_STEP cells (the boxes never
  reach the padding), so 64 map shapes compile region pooling once per table
  depth; every result is still the pyramid of the box's own cells."""
  from sppnet_jax.detection.features import pooling as features  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  step = features.MAP_CELLS_STEP
  with compile_count.compilations() as compiled:
    for height in range(2 * step + 1, 3 * step + 1):
      for width in range(step + 1, 2 * step + 1):
        conv5 = rng.normal(size=(height, width, 3)).astype(np.float32)
        cells = np.array([[0, 0, height, width], [1, 2, 5, 7], [0, 0, 0, 0]])
        valid = np.array([True, True, False])
        got = np.asarray(features.pool_cells(conv5, cells, valid, (6, 3, 2, 1)))
        for r in range(2):
          y0, x0, y1, x1 = cells[r]
          np.testing.assert_array_equal(
              got[r], np.asarray(spatial_pyramid_pool(
                  conv5[None, y0:y1, x0:x1], (6, 3, 2, 1)))[0])
        assert not got[2].any()
  assert compiled.count('_pool_padded') == 1, compiled


def test_an_overfeat_backbone_pools_the_cells_of_its_stride_of_12():
  """Overfeat-5's cell j is centred on 8.5 + 12 j (conv1 7/2 pad 0: 3 pixels,
  pool1 3/3: 1 step of 2, pool2 2/2: half a step of 6), not ZF-5's 20.5 + 16 j."""
  model = SPPNet(width_multiplier=0.1, fc_dim=8, num_classes=3,
                 architecture='overfeat5')
  rng = np.random.default_rng(2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                      train=False)['params']
  image = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
  boxes = np.array([[3, 5, 60, 70], [30, 40, 97, 148], [0, 0, 100, 150]],
                   np.float32)
  scales = (96,)
  maps = MultiScaleConv5(model, params, scales, STEP)(image)
  got = pool_boxes(maps, boxes, 100, 150, scales, input_size=64,
                   architecture='overfeat5')
  shape = _bucket(100, 150, 96)
  resized = np.round(tf.image.resize(image, shape, method='bilinear').numpy())
  conv5 = model.apply({'params': params},
                      normalize_images(resized[None].astype(np.uint8)),
                      method='features')
  fy, fx = shape[0] / 100, shape[1] / 150

  def cells(lo, hi, count):
    inside = [j for j in range(count) if lo < 8.5 + 12 * j < hi]
    return slice(inside[0], inside[-1] + 1)

  for r, (y0, x0, y1, x1) in enumerate(boxes):
    rows = cells(y0 * fy, y1 * fy, conv5.shape[1])
    cols = cells(x0 * fx, x1 * fx, conv5.shape[2])
    expected = spatial_pyramid_pool(conv5[:, rows, cols])[0]
    np.testing.assert_array_equal(got[r], np.asarray(expected), err_msg=str(r))
