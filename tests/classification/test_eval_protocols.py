"""The test protocols (center, ten views, full image, multi-scale) against a
per-image loop written here: views cut by hand, each view run alone, softmax
averaged, every readable validation image counted once."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from sppnet_jax import normalize_images, spatial_pyramid_pool
from sppnet_jax.classification import eval_views, evaluate, input_pipeline, train
from sppnet_jax.classification.config import validate_config
from sppnet_jax.core import compile_count
from sppnet_jax.core.data import image_ops
from sppnet_jax.errors import ConfigError
from tests.helpers import conv5_cells, small_config

RESIZE, CROP, STEP = 72, 64, 32  # small_config's eval_resize and eval_size


@pytest.fixture(scope='module')
def setup(small_data, tmp_path_factory):
  """Randomly initialised small SPP-net (the protocols do not need a trained
  one) on a copy of the small data with one corrupt validation file added."""
  data = str(tmp_path_factory.mktemp('protocols') / 'data')
  shutil.copytree(small_data, data)
  with open(os.path.join(data, 'val', 'circle', 'zz_corrupt.jpg'), 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated')
  config = small_config(data)
  run = train.setup(config)
  return run.model, run.state.params, run.config


def _uint8(image):
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _short_side_shape(h, w, short_side):
  """The short side at `short_side`, the long one scaled and rounded half up."""
  short = min(h, w)
  return tuple(short_side if side == short else int(side * short_side / short + 0.5)
               for side in (h, w))


def _ten_view(image):
  # TF's bilinear resize itself, not the pipeline's code around it.
  resized = tf.image.resize(image, _short_side_shape(*image.shape[:2], RESIZE),
                            method='bilinear').numpy()
  h, w = resized.shape[:2]
  views = []
  for y, x in ((0, 0), (0, w - CROP), (h - CROP, 0), (h - CROP, w - CROP),
               ((h - CROP) // 2, (w - CROP) // 2)):
    crop = _uint8(resized[y:y + CROP, x:x + CROP])
    views += [crop, crop[:, ::-1]]
  return views


def _bucket(h, w, short_side):
  scale = short_side / min(h, w)
  return tuple(max(STEP, round(side * scale / STEP) * STEP) for side in (h, w))


def _full_image(image, short_side=RESIZE, flip=False):
  view = _uint8(tf.image.resize(image, _bucket(*image.shape[:2], short_side),
                                method='bilinear').numpy())
  return [view, view[:, ::-1]] if flip else [view]


def _reference(model, params, config, make_views, score=None):
  """(metrics, set of view shapes) from a loop over the validation files;
  `score(params, views)` gives the views' softmax vectors (default: each view
  run through the network alone)."""
  root = os.path.join(config.data_dir, 'val')
  apply = jax.jit(lambda p, x: jax.nn.softmax(
      model.apply({'params': p}, normalize_images(x, jnp.float32), train=False)))
  params = jax.device_get(params)
  correct1 = correct5 = loss = count = 0
  shapes = set()
  for label, name in enumerate(sorted(os.listdir(root))):
    for file in sorted(os.listdir(os.path.join(root, name))):
      try:
        image = image_ops.decode_image_file(os.path.join(root, name, file))
      except tf.errors.InvalidArgumentError:
        continue
      views = make_views(image)
      shapes.update(v.shape for v in views)
      probabilities = np.mean(
          score(params, views) if score else
          [np.asarray(apply(params, v[None]))[0] for v in views], axis=0)
      order = list(np.argsort(-probabilities))
      correct1 += order.index(label) < 1
      correct5 += order.index(label) < 5
      loss -= np.log(probabilities[label])
      count += 1
  return dict(top1=correct1 / count, top5=correct5 / count, loss=loss / count,
              num_examples=count), shapes


def _check(setup, protocol, make_views, score=None, **eval_fields):
  model, params, config = setup
  config = config.copy_and_resolve_references()
  config.eval.protocol = protocol
  config.eval.update(eval_fields)
  skipped = input_pipeline.num_skipped_images('eval')
  with compile_count.compilations() as compiled:
    got = evaluate.evaluate_views(model, params, config)
  expected, shapes = _reference(model, params, config, make_views, score)
  assert got['num_examples'] == expected['num_examples'] == 30
  assert input_pipeline.num_skipped_images('eval') == skipped + 1  # the corrupt one
  assert got['top1'] == pytest.approx(expected['top1'], abs=1e-9)
  assert got['top5'] == pytest.approx(expected['top5'], abs=1e-9)
  assert got['loss'] == pytest.approx(expected['loss'], rel=1e-5)
  return compiled.count('view_eval_step'), shapes


def test_ten_view(setup):
  compiled, shapes = _check(setup, 'ten_view', _ten_view)
  assert compiled == 1 and shapes == {(CROP, CROP, 3)}


def test_full_image_compiles_once_per_bucket(setup):
  compiled, shapes = _check(setup, 'full_image',
                            lambda image: _full_image(image, flip=True), flip=True)
  # Images of 96..192 pixels a side fall in several buckets; one compile each.
  assert len(shapes) >= 4
  assert compiled == len(shapes), shapes


def test_multi_scale_full_images(setup):
  scales = (48, 72, 100)
  compiled, shapes = _check(
      setup, 'multi_scale',
      lambda image: sum((_full_image(image, s) for s in scales), []),
      scales=scales, scale_views='full_image')
  assert compiled == len(shapes)


def _windows(height, width):
  """CROP windows at the center, the corners and the side middles, distinct."""
  rows = (0, (height - CROP) // 2, height - CROP)
  cols = (0, (width - CROP) // 2, width - CROP)
  return sorted({(y, x) for y in rows for x in cols})


def _feature_map_scores(model):
  features = jax.jit(lambda p, x: model.apply(
      {'params': p}, normalize_images(x, jnp.float32), method='features'))
  head = jax.jit(lambda p, v: jax.nn.softmax(
      model.apply({'params': p}, v, train=False, method='head')))

  def score(params, views):
    out = []
    for view in views:  # each full image (and mirror) at each scale
      conv5 = features(params, view[None])
      for y, x in _windows(*view.shape[:2]):
        rows = conv5_cells(y, y + CROP, conv5.shape[1])
        cols = conv5_cells(x, x + CROP, conv5.shape[2])
        vector = spatial_pyramid_pool(conv5[:, rows, cols], (6, 3, 2, 1))
        out.append(np.asarray(head(params, vector))[0])
    return out

  return score


def test_feature_map_views_compile_once_per_bucket(setup):
  model = setup[0]
  scales = (64, 90)
  compiled, shapes = _check(
      setup, 'feature_map_views',
      lambda image: sum((_full_image(image, s, flip=True) for s in scales), []),
      score=_feature_map_scores(model), scales=scales)
  assert len(shapes) >= 4
  assert compiled == len(shapes), shapes


def test_feature_map_windows_at_the_paper_s_smallest_scale():
  from sppnet_jax.classification.eval_views import feature_map_windows
  # 224 x 300: one row position, three columns (left, middle, right).
  assert feature_map_windows(224, 300, 224) == [
      (0, 38, 224, 262), (0, 0, 224, 224), (0, 76, 224, 300)]
  assert len(feature_map_windows(300, 400, 224)) == 9
  assert feature_map_windows(224, 224, 224, full_image=True) == [(0, 0, 224, 224)]


def test_center_views_match_the_training_evaluation(setup):
  """The view path's single center crop scores what the training-time
  evaluation (global batches, padded and masked) scores."""
  model, params, config = setup
  center = evaluate.evaluate_protocol(
      evaluate.make_eval_step(model, *_mesh_and_sharding(params)), model, params,
      config, _mesh_and_sharding(params)[0])
  config = config.copy_and_resolve_references()
  config.eval.update(protocol='multi_scale', scale_views='center', scales=(RESIZE,))
  views = evaluate.evaluate_views(model, params, config)
  assert center['protocol'] == 'center'
  assert views['num_examples'] == center['num_examples'] == 30
  assert views['top1'] == pytest.approx(center['top1'], abs=1e-6)
  assert views['loss'] == pytest.approx(center['loss'], rel=1e-5)


def _mesh_and_sharding(params):
  sharding = jax.tree.leaves(params)[0].sharding
  return sharding.mesh, jax.tree.map(lambda x: x.sharding, params)


@pytest.mark.parametrize('fields, message', [
    (dict(protocol='five_view'), "config.eval.protocol='five_view' is not one of"),
    (dict(protocol='multi_scale', scales=(224, 40)), 'must be at least 64'),
    (dict(protocol='multi_scale', scale_views='full'), "scale_views='full' is not"),
    (dict(protocol='feature_map_views', scales=(64, 40)),
     r'config.eval.scales=\(64, 40\) must be at least eval_size=64'),
    (dict(protocol='feature_map_views', projection='rcnn'),
     "config.eval.projection='rcnn' is not one of"),
])
def test_bad_protocol_settings_are_one_line_errors(setup, fields, message):
  config = setup[2].copy_and_resolve_references()
  config.eval.update(fields)
  if 'scales' in fields and fields['protocol'] == 'multi_scale':
    config.eval.scale_views = 'ten_view'
  with pytest.raises(ConfigError, match=message) as error:
    validate_config(config)
  assert '\n' not in str(error.value)


def test_zfnet_refuses_full_images_and_feature_map_views(setup):
  config = setup[2].copy_and_resolve_references()
  config.model, config.eval.protocol = 'zfnet', 'full_image'
  with pytest.raises(ConfigError, match='full-image views need SPP-net'):
    validate_config(config)
  config.eval.protocol = 'feature_map_views'
  with pytest.raises(ConfigError, match='feature_map_views need SPP-net'):
    validate_config(config)


def test_feature_map_views_of_an_overfeat_net_follow_its_stride_of_12():
  # A 256 x 300 image at Overfeat: conv1 (256-7)//2+1 = 125, pool1 floor(122/3)
  # + 1 = 41, conv2 41, pool2 ceil(39/2)+1 = 21 rows; 300: 147, 49, 49, 25
  # columns. Cell j is centred on 8.5 + 12 j: a window keeps the cells whose
  # centres it holds (ZF-5's 20.5 + 16 j would keep others).
  spec = eval_views.ViewSpec(scales=(256,), kind='full_image', crop=224,
                             step=32, flip=True, feature_map=True)
  cells = evaluate.feature_map_cells(spec, 256, 300, 21, 25, 'overfeat5')
  windows = eval_views.feature_map_windows(256, 300, 224)
  expected = []
  for y0, x0, y1, x1 in windows:
    rows = [j for j in range(21) if y0 < 8.5 + 12 * j < y1]
    cols = [j for j in range(25) if x0 < 8.5 + 12 * j < x1]
    expected.append([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1])
  assert cells.tolist() == expected
  assert expected[0] == [1, 3, 20, 22]  # the center window (16, 38, 240, 262)
