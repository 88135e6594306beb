"""Tests of the embedded detection set: a small set (12 train / 4 val / 6 test
images) read back with pycocotools and PIL; each image re-drawn through the public
`render_example` and re-composed here pixel by pixel with PIL's integer blend
((a * (255 - m) + b * m) / 255, rounded) and clipped noise, so that the masks
are proven to be what the image shows; the boxes re-derived here from those
masks with their own visibility rule and loops; the build's atomicity and
reuse; the val split's images are none of train's or test's."""

import hashlib
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sppnet_jax.detection.data import embedded as embedded_data
from sppnet_jax.errors import DataError
from tests.helpers import tree_bytes

NUM_TRAIN, NUM_VAL, NUM_TEST = 12, 4, 6
COUNTS = (('train', NUM_TRAIN), ('val', NUM_VAL), ('test', NUM_TEST))
IDS = [1, 2, 3, 5, 7, 11, 13, 17]


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
  parent = tmp_path_factory.mktemp('detection_set')
  root = embedded_data.ensure_embedded_detection_dataset(
      str(parent / 'set'), num_train=NUM_TRAIN, num_val=NUM_VAL,
      num_test=NUM_TEST)
  return root


def _example(split, index):
  return embedded_data.render_example(
      np.random.default_rng(embedded_data.example_seed(split, index)))


def _recompose(example):
  """The image from background, masks, colours and noise, computed here."""
  canvas = np.asarray(example.background).astype(np.int64)
  for mask, colour in zip(example.masks, example.colours):
    m = mask.astype(np.int64)[..., None]
    a = canvas * (255 - m) + colour.astype(np.int64) * m
    canvas = np.floor(a / 255 + 0.5).astype(np.int64)  # never a tie: 255 odd
  noise = np.asarray(example.noise).astype(np.int64)
  return np.clip(canvas + noise - 128, 0, 255)


def _blocks(image):
  a = np.asarray(image, np.float64)
  h, w = a.shape[0] // 4 * 4, a.shape[1] // 4 * 4
  return a[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean((1, 3))


def _visible_box(masks, i):
  """(x, y, w, h) of the pixels where object i shows: it covers some of the
  pixel and no later object covers all of it."""
  shows = (masks[i] > 0) & np.all(masks[i + 1:] < 255, axis=0)
  return _full_box(shows)


def _full_box(mask):
  ys, xs = np.nonzero(mask)
  return (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())


def _visible_fraction(masks, i):
  m = masks.astype(np.float64) / 255
  shown = m[i].copy()
  for j in range(i + 1, len(masks)):
    shown *= 1 - m[j]
  return shown.sum() / m[i].sum()


def test_layout_and_coco_index(small_set):
  root = small_set
  assert sorted(os.listdir(root)) == ['.complete', 'test', 'train', 'val']
  assert os.listdir(os.path.dirname(root)) == ['set']  # no temporary folder
  with open(os.path.join(root, embedded_data.MARKER)) as f:
    marker = json.load(f)
  assert {k: marker[k] for k in ('version', 'num_train', 'num_val',
                                 'num_test')} == {
                                     'version': 2, 'num_train': NUM_TRAIN,
                                     'num_val': NUM_VAL, 'num_test': NUM_TEST}
  sizes = set()
  for split, count in COUNTS:
    split_dir = os.path.join(root, split)
    assert sorted(os.listdir(split_dir)) == ['annotations.json', 'images']
    coco = COCO(os.path.join(split_dir, 'annotations.json'))
    assert coco.dataset['info']['version'] == '2'
    assert split in coco.dataset['info']['description']
    assert marker[f'num_{split}_objects'] == len(coco.dataset['annotations'])
    assert marker[f'num_{split}_difficult'] == sum(
        a['difficult'] for a in coco.dataset['annotations'])
    assert sorted(coco.getImgIds()) == list(range(1, count + 1))
    assert coco.getCatIds() == IDS
    assert [c['name'] for c in coco.loadCats(IDS)] == [
        name for _, name in embedded_data.CATEGORIES]
    files = sorted(os.listdir(os.path.join(split_dir, 'images')))
    assert files == sorted(os.path.basename(im['file_name'])
                           for im in coco.loadImgs(coco.getImgIds()))
    ann_ids = coco.getAnnIds()
    assert len(set(ann_ids)) == len(ann_ids) == len(coco.dataset['annotations'])
    for image_id in coco.getImgIds():
      info = coco.loadImgs(image_id)[0]
      assert info['file_name'].startswith('images/')
      with Image.open(os.path.join(split_dir, info['file_name'])) as image:
        assert image.format == 'JPEG' and image.mode == 'RGB'
        assert image.size == (info['width'], info['height'])
        image.load()
      assert 128 <= info['width'] <= 256 and 128 <= info['height'] <= 256
      sizes.add(image.size)
      anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
      assert 1 <= len(anns) <= 5
      for ann in anns:
        x, y, w, h = ann['bbox']
        assert all(v == int(v) for v in ann['bbox'])
        assert w >= 1 and h >= 1
        assert 0 <= x and x + w <= info['width']
        assert 0 <= y and y + h <= info['height']
        assert ann['area'] == w * h
        assert ann['iscrowd'] == 0 and ann['difficult'] in (0, 1)
        assert ann['category_id'] in IDS
  assert sum(w != h for w, h in sizes) >= NUM_TRAIN  # mostly not square


def test_images_are_composed_from_the_masks_and_boxes_are_tight(small_set):
  for split, count in COUNTS:
    split_dir = os.path.join(small_set, split)
    with open(os.path.join(split_dir, 'annotations.json')) as f:
      coco = json.load(f)
    for index in range(count):
      example = _example(split, index)
      image = coco['images'][index]
      anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
      masks = example.masks
      assert masks.shape[1:] == (image['height'], image['width'])
      assert masks.dtype == np.uint8
      # The masks, colours and noise describe the image exactly...
      np.testing.assert_array_equal(np.asarray(example.image),
                                    _recompose(example))
      # ... and the JPEG file is that image (up to JPEG's loss, which is
      # mostly the noise: compare 4x4 block means).
      with Image.open(os.path.join(split_dir, image['file_name'])) as f:
        decoded = np.asarray(f.convert('RGB'), np.float64)
      assert np.abs(_blocks(decoded) - _blocks(example.image)).mean() < 4
      assert [a['category_id'] for a in anns] == list(example.category_ids)
      for i, ann in enumerate(anns):
        assert tuple(ann['bbox']) == _visible_box(masks, i)
        assert ann['difficult'] == int(example.difficult[i])


def test_val_images_are_none_of_train_or_test(small_set):
  """Val is disjoint from train and test by content: no two images of the set
  have the same JPEG bytes or the same pixels, and each split has its own seed
  code, fixed whatever the position of the split in SPLITS."""
  assert embedded_data.SPLITS == ('train', 'val', 'test')
  assert embedded_data.NUM_VAL == 100
  codes = {split: embedded_data.example_seed(split, 0)[2]
           for split in embedded_data.SPLITS}
  assert codes == {'train': 0, 'test': 1, 'val': 2}
  assert embedded_data.example_seed('val', 7)[-1] == 7
  file_hashes, pixel_hashes = {}, {}
  for split, count in COUNTS:
    images = os.path.join(small_set, split, 'images')
    names = sorted(os.listdir(images))
    assert len(names) == count
    for name in names:
      with open(os.path.join(images, name), 'rb') as f:
        data = f.read()
      file_hashes.setdefault(hashlib.sha256(data).hexdigest(), []).append(
          (split, name))
    for index in range(count):
      pixels = np.asarray(_example(split, index).image).tobytes()
      pixel_hashes.setdefault(hashlib.sha256(pixels).hexdigest(), []).append(
          (split, index))
  num_images = NUM_TRAIN + NUM_VAL + NUM_TEST
  assert len(file_hashes) == num_images, [
      v for v in file_hashes.values() if len(v) > 1]
  assert len(pixel_hashes) == num_images, [
      v for v in pixel_hashes.values() if len(v) > 1]


def test_occlusion_difficult_objects_and_sizes_occur():
  """Over 60 scenes: the documented difficult rule, at least 30% of each object
  visible, objects partly hidden (visible box smaller than the full one),
  small and large objects, every class."""
  occluded = difficult = 0
  long_sides, classes = [], set()
  for index in range(60):
    example = _example('train', index)
    masks = example.masks
    boxes = example.boxes()  # (y0, x0, y1, x1)
    for i in range(len(masks)):
      x, y, w, h = (boxes[i, 1], boxes[i, 0], boxes[i, 3] - boxes[i, 1],
                    boxes[i, 2] - boxes[i, 0])
      fraction = _visible_fraction(masks, i)
      assert fraction >= 0.3 - 1e-6
      if abs(fraction - 0.5) > 1e-4:
        assert example.difficult[i] == (fraction < 0.5 or w * h < 256)
      occluded += (x, y, w, h) != _full_box(masks[i])
      difficult += example.difficult[i]
      long_sides.append(max(w, h) / min(masks.shape[1:]))
      classes.add(example.category_ids[i])
  assert occluded >= 3
  num_objects = len(long_sides)
  assert 0.03 * num_objects <= difficult <= 0.3 * num_objects
  assert min(long_sides) < 0.15 and max(long_sides) > 0.6
  assert sorted(classes) == IDS


def test_deterministic_across_builds_and_processes(small_set, tmp_path):
  again = embedded_data.ensure_embedded_detection_dataset(
      str(tmp_path / 'again'), num_train=NUM_TRAIN, num_val=NUM_VAL,
      num_test=NUM_TEST)
  assert tree_bytes(again) == tree_bytes(small_set)
  # 64 images are drawn by a pool of processes: the same files as in one
  # process, and each image does not depend on the set's size (nor on the
  # size of the other splits).
  pool = embedded_data.ensure_embedded_detection_dataset(
      str(tmp_path / 'pool'), num_train=40, num_val=8, num_test=16,
      num_workers=2)
  serial = embedded_data.ensure_embedded_detection_dataset(
      str(tmp_path / 'serial'), num_train=40, num_val=8, num_test=16,
      num_workers=1)
  assert tree_bytes(pool) == tree_bytes(serial)
  small = tree_bytes(small_set)
  big = tree_bytes(pool)
  for name in ('train/images/000001.jpg', 'train/images/000012.jpg',
               'val/images/000001.jpg', 'val/images/000004.jpg',
               'test/images/000006.jpg'):
    assert big[name] == small[name]
  # Without val, train and test are the same images.
  no_val = tree_bytes(embedded_data.ensure_embedded_detection_dataset(
      str(tmp_path / 'no_val'), num_train=2, num_val=0, num_test=2))
  assert sorted(n for n in no_val if n.startswith('val/')) == [
      'val/annotations.json']
  for name in ('train/images/000002.jpg', 'test/images/000002.jpg'):
    assert no_val[name] == small[name]


def test_a_second_call_reuses_the_set(small_set, caplog):
  path = os.path.join(small_set, 'test', 'images', '000001.jpg')
  stat = os.stat(path)
  os.utime(path, (1, 1))
  try:
    assert embedded_data.ensure_embedded_detection_dataset(
        small_set, num_train=NUM_TRAIN, num_val=NUM_VAL,
        num_test=NUM_TEST) == small_set
    assert os.stat(path).st_mtime == 1
    assert not caplog.records
    # Asked for another size, it is still used as it is, with a warning.
    for num_train, num_val in ((NUM_TRAIN + 1, NUM_VAL),
                               (NUM_TRAIN, NUM_VAL + 1)):
      caplog.clear()
      with caplog.at_level(logging.WARNING):
        assert embedded_data.ensure_embedded_detection_dataset(
            small_set, num_train=num_train, num_val=num_val,
            num_test=NUM_TEST) == small_set
      assert 'delete the folder to remake it' in caplog.text
    assert len(os.listdir(os.path.join(small_set, 'train', 'images'))) == (
        NUM_TRAIN)
    assert len(os.listdir(os.path.join(small_set, 'val', 'images'))) == (
        NUM_VAL)
  finally:
    os.utime(path, (stat.st_atime, stat.st_mtime))


def test_a_partial_or_foreign_folder_is_not_reused(tmp_path):
  stale = tmp_path / 'stale'
  (stale / 'train' / 'images').mkdir(parents=True)
  (stale / 'train' / 'annotations.json').write_text('{}')
  with pytest.raises(DataError, match='delete it, or point'):
    embedded_data.ensure_embedded_detection_dataset(str(stale), num_train=1,
                                                    num_val=1, num_test=1)
  assert os.listdir(stale) == ['train']  # untouched
  assert not embedded_data.is_complete(str(stale))
  empty = tmp_path / 'empty'
  empty.mkdir()
  embedded_data.ensure_embedded_detection_dataset(str(empty), num_train=1,
                                                  num_val=1, num_test=1)
  assert embedded_data.is_complete(str(empty))


def test_crash_midway_leaves_no_partial_set(tmp_path, monkeypatch):
  calls = []
  original = embedded_data.render_example

  def failing(rng):
    calls.append(1)
    if len(calls) == 3:
      raise RuntimeError('simulated crash')
    return original(rng)

  monkeypatch.setattr(embedded_data, 'render_example', failing)
  with pytest.raises(RuntimeError, match='simulated crash'):
    embedded_data.ensure_embedded_detection_dataset(
        str(tmp_path / 'set'), num_train=2, num_val=1, num_test=2)
  assert os.listdir(tmp_path) == []  # neither the set nor a temporary folder


def test_losing_a_race_uses_the_winners_set(tmp_path, monkeypatch):
  """Another process completes the set while this one draws: ours is dropped."""
  root = str(tmp_path / 'set')
  original = embedded_data._write_dataset

  def racing(out_dir, counts, num_workers):
    monkeypatch.setattr(embedded_data, '_write_dataset', original)
    embedded_data.ensure_embedded_detection_dataset(root, num_train=1,
                                                    num_val=1, num_test=1)
    with open(os.path.join(root, 'winner'), 'w') as f:
      f.write('1')
    return original(out_dir, counts, num_workers)

  monkeypatch.setattr(embedded_data, '_write_dataset', racing)
  assert embedded_data.ensure_embedded_detection_dataset(
      root, num_train=1, num_val=1, num_test=1) == root
  assert os.path.isfile(os.path.join(root, 'winner'))
  assert os.listdir(tmp_path) == ['set']


def test_default_root(monkeypatch, tmp_path):
  monkeypatch.setenv('SPPNET_DETECTION_DATA_DIR', str(tmp_path / 'x'))
  assert embedded_data.default_root() == str(tmp_path / 'x')
  monkeypatch.delenv('SPPNET_DETECTION_DATA_DIR')
  assert embedded_data.default_root().endswith(
      os.path.join('.cache', 'sppnet_jax', 'embedded-detection-v2'))
