"""Transfer features equal the network's own layers, view by view; the cache
resumes and refuses other settings."""

import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from sppnet_jax.classification import eval_views
from sppnet_jax.transfer import features as feature_lib
from sppnet_jax.core.spp import spatial_pyramid_pool
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.detection.backbone import load_backbone
from sppnet_jax.errors import ConfigError, DataError


@pytest.fixture(scope='module')
def backbone(detection_setup):
  return load_backbone(detection_setup[1])


def _images():
  rng = np.random.default_rng(3)
  shapes = [(120, 160), (150, 100), (128, 128), (121, 161), (90, 200)]
  items = [feature_lib.LabelledImage(f'im{i}', rng.integers(
      0, 256, shape + (3,), dtype=np.uint8), i) for i, shape in
           enumerate(shapes)]
  items.insert(2, feature_lib.LabelledImage('broken', None, 99))
  return items


def _reference_view(image, view):
  """The view by TF's resize and the evaluation protocols' own views."""
  if view.kind == 'warp':
    resized = tf.image.resize(tf.cast(image, tf.float32), [view.size] * 2)
    return np.asarray(tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)),
                              tf.uint8))
  kind = 'center' if view.kind == 'center' else 'full_image'
  spec = eval_views.ViewSpec(scales=(view.size,), kind=kind, crop=view.size,
                             step=view.step, flip=False)
  return eval_views.views_at_scale(image, view.size, spec, False).numpy()[0]


def _reference_layers(backbone, view_image):
  """spp6 / pool5 / fc6 / fc7 of one image through the network's own
  methods and its captured fc6 / fc7 outputs (before ReLU)."""
  model, variables = backbone.model, {'params': backbone.params}
  x = normalize_images(view_image[None], model.dtype)
  conv5 = model.apply(variables, x, method='features')
  pool5 = model.apply(variables, conv5, method='pool5')
  _, state = model.apply(variables, x, train=False,
                         capture_intermediates=True)
  inter = state['intermediates']
  return {'spp6': spatial_pyramid_pool(conv5, (6,))[0],
          'pool5': pool5[0],
          'fc6': jax.nn.relu(inter['fc6']['__call__'][0][0]),
          'fc7': jax.nn.relu(inter['fc7']['__call__'][0][0])}


@pytest.mark.parametrize('kind,size', [('center', 96), ('warp', 96),
                                       ('full', 96), ('full', 140)])
def test_features_equal_the_networks_layers(backbone, kind, size):
  view = feature_lib.View(kind, size, step=16)
  extractor = feature_lib.FeatureExtractor(
      backbone.model, backbone.params, feature_lib.LAYERS,
      pixel_budget=2 * 96 * 96)  # batches of 2 and of 1: padding exercised
  items = _images()
  out = feature_lib.split_features(items, extractor, view)
  readable = [item for item in items if item.image is not None]
  assert out.keys == [item.key for item in readable]
  assert out.labels.tolist() == [item.label for item in readable]
  assert out.skipped == 1
  for i, item in enumerate(readable):
    reference = _reference_layers(backbone,
                                  _reference_view(item.image, view))
    for layer in feature_lib.LAYERS:
      ref = np.asarray(reference[layer], np.float32)
      got = out.features[layer][i]
      assert got.dtype == np.float32 and got.shape == ref.shape
      scale = max(float(np.abs(ref).max()), 1e-6)
      np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3 * scale,
                                 err_msg=f'{item.key} {layer}')


def test_cache_resumes_and_refuses_other_settings(backbone, tmp_path):
  view = feature_lib.View('full', 96, step=16)
  extractor = feature_lib.FeatureExtractor(backbone.model, backbone.params,
                                           ('fc7', 'spp6'))
  cache = str(tmp_path / 'cache')
  first = feature_lib.split_features(_images(), extractor, view,
                                     cache_dir=cache, part_size=2,
                                     settings={'split': 'test'})
  parts = sorted(n for n in os.listdir(cache) if n.startswith('part-'))
  assert len(parts) == 3  # 5 readable images, 2 per part
  # A run killed after its first part: the rest is computed again, only it.
  for name in parts[1:] + ['complete.json']:
    os.remove(os.path.join(cache, name))
  calls = []
  original = extractor.__call__

  class Counting:
    layers, batch_size = extractor.layers, extractor.batch_size

    def __call__(self, views):
      calls.append(len(views))
      return original(views)

  resumed = feature_lib.split_features(_images(), Counting(), view,
                                       cache_dir=cache, part_size=2,
                                       settings={'split': 'test'})
  assert sum(calls) == 3
  assert resumed.keys == first.keys
  for layer in ('fc7', 'spp6'):
    np.testing.assert_array_equal(resumed.features[layer],
                                  first.features[layer])
  # Complete: read back without the images.
  again = feature_lib.split_features([], extractor, view, cache_dir=cache,
                                     settings={'split': 'test'})
  np.testing.assert_array_equal(again.features['fc7'], first.features['fc7'])
  assert again.skipped == 1
  with pytest.raises(DataError, match='other settings'):
    feature_lib.split_features([], extractor, view, cache_dir=cache,
                               settings={'split': 'train'})


def test_refusals(backbone):
  with pytest.raises(ConfigError, match='not one of'):
    feature_lib.View('mirror', 96)
  with pytest.raises(ConfigError, match='not one of'):
    feature_lib.FeatureExtractor(backbone.model, backbone.params, ('fc8',))
  model = backbone.model.clone(spp_levels=(4, 2, 1))
  with pytest.raises(ConfigError, match='6 x 6 level'):
    feature_lib.FeatureExtractor(model, backbone.params, ('spp6',))
