"""The conv5 cache: files written whole, read back as written, settings that
refuse a mixed cache, resumption that computes only what is missing, and the
in-memory LRU of fine-tuning."""

import os

import numpy as np
import pytest

from sppnet_jax.detection.data.sources import DetectionExample
from sppnet_jax.detection.features import cache as feature_cache
from sppnet_jax.errors import ConfigError, DataError


def _entry(image_id, rng, flipped=True):
  maps = (rng.random((3, 4, 5)).astype(np.float16),
          rng.random((5, 7, 5)).astype(np.float16))
  flips = tuple(m[:, ::-1] for m in maps) if flipped else ()
  return feature_cache.CachedImage(
      image_id, 40, 60, maps, flips, np.array([[48, 72], [80, 112]]),
      np.array([[1, 2, 30, 40]], np.float32), np.array([3], np.int32),
      np.array([True]))


def test_save_and_load_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  store = feature_cache.Conv5Store(str(tmp_path / 'train'))
  entry = _entry('a/b 1', rng)
  store.save(entry)
  assert store.has('a/b 1') and store.image_ids() == ['a/b 1']
  back = store.load('a/b 1')
  assert (back.height, back.width) == (40, 60)
  for got, want in zip(back.maps + back.flipped, entry.maps + entry.flipped):
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(back.gt_boxes, entry.gt_boxes)
  np.testing.assert_array_equal(back.gt_labels, [3])
  np.testing.assert_array_equal(back.gt_difficult, [True])
  light = store.load('a/b 1', with_maps=False)
  assert light.maps == () and light.flipped == ()
  # Scaled maps: float32, factors = resized / original.
  scaled = back.scaled_maps(flipped=True)
  assert scaled[1].conv5.dtype == np.float32
  assert scaled[1].factor_y == 80 / 40 and scaled[1].factor_x == 112 / 60
  assert not [n for n in os.listdir(store.directory) if n.startswith('.')]


def test_missing_flips_and_files_are_one_line_errors(tmp_path):
  store = feature_cache.Conv5Store(str(tmp_path))
  store.save(_entry('x', np.random.default_rng(1), flipped=False))
  with pytest.raises(DataError, match='no mirrored maps'):
    store.load('x').scaled_maps(flipped=True)
  with pytest.raises(DataError, match='no cached conv5 for image y'):
    store.load('y')
  with open(store.path('z'), 'wb') as f:
    f.write(b'not a zip')
  with pytest.raises(DataError, match='unreadable'):
    store.load('z')


def test_settings_record_refuses_other_settings(tmp_path):
  store = feature_cache.Conv5Store(str(tmp_path))
  store.record_settings({'scales': [688], 'flip': True})
  store.record_settings({'scales': [688], 'flip': True})  # same: fine
  with pytest.raises(ConfigError, match=r'conv5 cache made with other settings '
                     r'\(scales: \[688\] -> \[480, 688\]\)'):
    store.record_settings({'scales': [480, 688], 'flip': True})


class _FakeConv5:
  """Maps whose values say which image and scale they came from."""
  scales = (20, 40)

  def __init__(self):
    self.calls = 0

  def resized_shape(self, height, width, scale):
    return (scale, scale * width // height)

  def __call__(self, image):
    self.calls += 1
    from sppnet_jax.detection.features.conv5 import ScaledMap
    return [ScaledMap(np.full((s // 10, s // 10, 2), float(image[0, 0, 0])
                              + float(image[0, -1, 0]) / 1000 + s,
                              np.float32), 1.0, 1.0) for s in self.scales]


def _examples(n):
  for i in range(n):
    image = np.zeros((10, 20, 3), np.uint8)
    image[0, 0, 0], image[0, -1, 0] = i, 100 + i
    yield DetectionExample(f'im{i}', image, np.zeros((0, 4), np.float32),
                           np.zeros(0, np.int32), np.zeros(0, bool))


def test_compute_resumes_with_the_missing_images_only(tmp_path):
  store = feature_cache.Conv5Store(str(tmp_path))
  conv5 = _FakeConv5()
  first = feature_cache.compute_conv5(_examples(2), store, conv5, flip=True)
  assert (first.computed, first.cached, conv5.calls) == (2, 0, 4)
  second = feature_cache.compute_conv5(_examples(3), store, conv5, flip=True)
  assert (second.computed, second.cached, conv5.calls) == (1, 2, 6)
  entry = store.load('im2')
  # Image maps: pixel (0, 0) = 2, last column 102; mirrored: swapped.
  assert float(entry.maps[0][0, 0, 0]) == pytest.approx(2 + 0.102 + 20, 1e-3)
  assert float(entry.flipped[1][0, 0, 0]) == pytest.approx(102 + 0.002 + 40,
                                                           1e-3)
  np.testing.assert_array_equal(entry.resized, [[20, 40], [40, 80]])


def test_map_memory_keeps_recent_images_within_its_budget(tmp_path):
  store = feature_cache.Conv5Store(str(tmp_path))
  rng = np.random.default_rng(2)
  for name in 'abc':
    store.save(_entry(name, rng))
  one = store.load('a').nbytes
  memory = feature_cache.LruImageCache(store, ['a', 'b', 'c'], max_bytes=2 * one)
  first = memory(0)
  assert memory(0) is first  # kept
  memory(1)
  memory(2)  # over budget: 'a' (least recently used) goes
  assert memory(0) is not first
  assert memory(2) is memory(2)
