"""Tests of sppnet_jax.input_pipeline (image folders, the embedded set, TFDS).

Expectations are computed independently of the pipeline: counts by hand, pixels
with PIL. Most data sets here are tiny solid-colour PNGs whose colour encodes a
unique example id, so that crops, flips and resizes keep the id readable and
"every example exactly once" can be checked exactly.
"""

import io
import logging
import os

import numpy as np
import pytest
from PIL import Image

from sppnet_jax.classification import embedded_data
from sppnet_jax.classification import input_pipeline as ip
from sppnet_jax.classification.config import base_config

# Class -> number of (train, val) images of the id data set.
ID_CLASSES = {'ant': (7, 4), 'bee': (5, 3), 'cat': (6, 4)}
NUM_TRAIN = 18
NUM_VAL = 11


def _colour(example_id, label):
  return (5 * example_id + 3, 60 * label + 20, 77)


def _decode_id(image):
  """Example id from a solid-colour image; asserts the image is solid."""
  image = np.asarray(image)
  first = image[0, 0]
  assert (image == first).all(), 'not a solid colour'
  r = int(first[0])
  assert (r - 3) % 5 == 0, r
  return (r - 3) // 5, (int(first[1]) - 20) // 60


def _write_png(path, colour, size):
  w, h = size
  Image.new('RGB', (w, h), colour).save(path, format='PNG')


def make_config(**overrides):
  """The base config, locked (a misspelled override is a KeyError)."""
  config = base_config()
  config.lock()
  config.update(dict(dataset='imagefolder', train_sizes=(16, 12), eval_size=12,
                     eval_resize=14, crop_min_area=0.3, seed=7, data_threads=2))
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def id_folder(tmp_path_factory):
  """train/ and val/ trees of solid-colour PNGs; returns (root, expected ids)."""
  root = tmp_path_factory.mktemp('ids')
  rng = np.random.default_rng(0)
  expected = {'train': {}, 'val': {}}
  next_id = 0
  for split, index in (('train', 0), ('val', 1)):
    for label, (name, counts) in enumerate(sorted(ID_CLASSES.items())):
      os.makedirs(root / split / name)
      for i in range(counts[index]):
        size = tuple(int(s) for s in rng.integers(14, 40, size=2))
        _write_png(root / split / name / f'img{i:02d}.png',
                   _colour(next_id, label), size)
        expected[split][next_id] = label
        next_id += 1
  # Files that are not images are ignored.
  (root / 'train' / 'ant' / 'notes.txt').write_text('not an image')
  return str(root), expected


def _train_ids(config, **kwargs):
  batches = list(ip.train_dataset(config, **kwargs).as_numpy_iterator())
  ids = []
  for b in batches:
    for image, label in zip(b['image'], b['label']):
      example_id, colour_label = _decode_id(image)
      assert colour_label == label
      ids.append(example_id)
  return batches, ids


def _eval_ids(config, dataset=None, **kwargs):
  dataset = dataset or ip.eval_dataset(config, **kwargs)
  batches = list(dataset.as_numpy_iterator())
  ids = []
  for b in batches:
    for image, label, mask in zip(b['image'], b['label'], b['mask']):
      if mask:
        example_id, colour_label = _decode_id(image)
        assert colour_label == label
        ids.append(example_id)
      else:
        assert not image.any() and label == 0
  return batches, ids


# -----------------------------------------------------------------------------
# Image folders.
# -----------------------------------------------------------------------------


def test_dataset_info(id_folder):
  root, _ = id_folder
  info = ip.get_dataset_info(make_config(data_dir=root))
  assert info == ip.DatasetInfo(
      num_classes=3, class_names=('ant', 'bee', 'cat'),
      num_train_examples=NUM_TRAIN, num_eval_examples=NUM_VAL)


@pytest.mark.parametrize('image_size', [16, 12])
def test_train_shapes_dtypes_and_batch_count(id_folder, image_size):
  root, expected = id_folder
  config = make_config(data_dir=root)
  # 7 batches of 4 = 28 examples > 18: the shard is repeated.
  batches, ids = _train_ids(config, epoch=0, image_size=image_size,
                            local_batch_size=4, steps=7)
  assert len(batches) == 7
  for b in batches:
    assert set(b) == {'image', 'label'}
    assert b['image'].shape == (4, image_size, image_size, 3)
    assert b['image'].dtype == np.uint8
    assert b['label'].shape == (4,) and b['label'].dtype == np.int32
  # The first pass is a permutation of the whole split.
  assert sorted(ids[:NUM_TRAIN]) == sorted(expected['train'])
  assert all(expected['train'][i] == l for i, l in zip(
      ids, np.concatenate([b['label'] for b in batches])))


def test_train_order_depends_on_seed_and_epoch(id_folder):
  root, _ = id_folder
  kwargs = dict(image_size=12, local_batch_size=6, steps=3)
  _, a = _train_ids(make_config(data_dir=root), epoch=0, **kwargs)
  _, b = _train_ids(make_config(data_dir=root), epoch=0, **kwargs)
  _, c = _train_ids(make_config(data_dir=root), epoch=1, **kwargs)
  _, d = _train_ids(make_config(data_dir=root, seed=8), epoch=0, **kwargs)
  assert a == b
  assert a != c and a != d
  assert sorted(a) == sorted(c) == sorted(d)


@pytest.mark.parametrize('process_count', [2, 3])
def test_train_shards_disjoint_and_cover_split(id_folder, process_count):
  root, expected = id_folder
  config = make_config(data_dir=root)
  largest = -(-NUM_TRAIN // process_count)
  steps = -(-largest // 2)
  for epoch in (0, 1):
    shards = []
    for p in range(process_count):
      batches, ids = _train_ids(
          config, epoch=epoch, image_size=12, local_batch_size=2, steps=steps,
          process_index=p, process_count=process_count)
      assert len(batches) == steps  # the same on every process
      shards.append(set(ids))
    for i in range(process_count):
      for j in range(i + 1, process_count):
        assert not shards[i] & shards[j]
    assert set().union(*shards) == set(expected['train'])


@pytest.mark.parametrize('process_count,batch_size,want_batches', [
    (1, 4, 3), (1, 5, 3), (1, 11, 1), (1, 12, 1),
    (2, 4, 2), (2, 5, 2),  # shards of 5 and 6
    (3, 4, 1), (3, 3, 2),  # shards of 3, 4, 4
])
def test_eval_every_example_once(id_folder, process_count, batch_size,
                                 want_batches):
  root, expected = id_folder
  config = make_config(data_dir=root)
  assert ip.num_eval_batches(config, local_batch_size=batch_size,
                             process_count=process_count) == want_batches
  all_ids = []
  for p in range(process_count):
    batches, ids = _eval_ids(config, local_batch_size=batch_size,
                             process_index=p, process_count=process_count)
    assert len(batches) == want_batches
    for b in batches:
      assert b['image'].shape == (batch_size, 12, 12, 3)
      assert b['image'].dtype == np.uint8
      assert b['label'].dtype == np.int32 and b['mask'].dtype == bool
    all_ids.extend(ids)
  assert sorted(all_ids) == sorted(expected['val'])  # each exactly once


def _link_copy(root, dest) -> None:
  """The id folder's files, hard-linked into `dest` (to add or change some)."""
  for split in ('train', 'val'):
    for name in ID_CLASSES:
      os.makedirs(dest / split / name)
      for f in os.listdir(os.path.join(root, split, name)):
        os.link(os.path.join(root, split, name, f), dest / split / name / f)


def test_cache_eval_reads_files_once(id_folder, tmp_path):
  root, expected = id_folder
  _link_copy(root, tmp_path)
  config = make_config(data_dir=str(tmp_path), cache_eval=True)
  dataset = ip.eval_dataset(config, local_batch_size=4)  # once per run
  first, ids = _eval_ids(config, dataset)
  assert sorted(ids) == sorted(expected['val'])
  for name in ID_CLASSES:  # the files are gone: a second pass is from memory
    for f in os.listdir(tmp_path / 'val' / name):
      os.remove(tmp_path / 'val' / name / f)
  second, _ = _eval_ids(config, dataset)
  assert len(first) == len(second)
  for a, b in zip(first, second):
    for k in ('image', 'label', 'mask'):
      np.testing.assert_array_equal(a[k], b[k])


def test_eval_split_folder_choice(id_folder, tmp_path):
  root, _ = id_folder
  # eval_split='validation' has no folder here: falls back to val/.
  assert ip.get_dataset_info(
      make_config(data_dir=root, eval_split='validation')).num_eval_examples \
      == NUM_VAL
  # An existing folder named by eval_split wins.
  os.symlink(os.path.join(root, 'train'), tmp_path / 'train')
  os.symlink(os.path.join(root, 'val'), tmp_path / 'val')
  os.symlink(os.path.join(root, 'train'), tmp_path / 'holdout')
  info = ip.get_dataset_info(make_config(data_dir=str(tmp_path),
                                         eval_split='holdout'))
  assert info.num_eval_examples == NUM_TRAIN


def _smooth_image(h, w, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  a, b, c = rng.uniform(-4, 4, size=3)
  img = np.stack([(a * yy + b * xx) % 256, (b * yy + c * xx) % 256,
                  np.full((h, w), 90)], -1)
  return img.astype(np.uint8)


def test_eval_center_crop_pixels(tmp_path):
  # Short side already eval_resize: no resize, the crop is exact.
  rng = np.random.default_rng(1)
  exact = rng.integers(0, 256, size=(14, 21, 3), dtype=np.uint8)
  # Needs a resize: 28x40 -> 14x20, then the 12x12 center.
  smooth = _smooth_image(40, 28, seed=2)  # portrait: h=40, w=28 -> 20x14
  for split in ('train', 'val'):
    os.makedirs(tmp_path / split / 'x')
  Image.fromarray(exact).save(tmp_path / 'val' / 'x' / 'a.png')
  Image.fromarray(smooth).save(tmp_path / 'val' / 'x' / 'b.png')
  Image.fromarray(exact).save(tmp_path / 'train' / 'x' / 'a.png')
  ref = np.asarray(Image.fromarray(smooth).resize((14, 20), Image.BILINEAR))
  ref = ref[4:16, 1:13].astype(int)  # top = (20-12)//2, left = (14-12)//2
  for antialias in (False, True):
    config = make_config(data_dir=str(tmp_path), resize_antialias=antialias)
    (batch,) = list(ip.eval_dataset(config, local_batch_size=2)
                    .as_numpy_iterator())
    # top = (14 - 12) // 2 = 1, left = (21 - 12) // 2 = 4.
    np.testing.assert_array_equal(batch['image'][0], exact[1:13, 4:16])
    diff = np.abs(batch['image'][1].astype(int) - ref)
    assert diff.mean() < 2.5, (antialias, diff.mean())


def _smooth_folder(root, num_train: int) -> None:
  """One class of smooth 60x80 photos: num_train to train on, one to validate."""
  for split in ('train', 'val'):
    os.makedirs(root / split / 'x')
  for i in range(num_train):
    Image.fromarray(_smooth_image(60, 80, seed=i)).save(
        root / 'train' / 'x' / f'{i}.jpg', quality=95)
  Image.fromarray(_smooth_image(60, 80, seed=9)).save(
      root / 'val' / 'x' / 'v.jpg', quality=95)


def test_multi_size_is_the_same_crop_resized(tmp_path):
  _smooth_folder(tmp_path, 4)
  config = make_config(data_dir=str(tmp_path), train_sizes=(32, 20))
  kwargs = dict(epoch=3, local_batch_size=4, steps=1)
  (big,) = list(ip.train_dataset(config, image_size=32, **kwargs)
                .as_numpy_iterator())
  (small,) = list(ip.train_dataset(config, image_size=20, **kwargs)
                  .as_numpy_iterator())
  np.testing.assert_array_equal(big['label'], small['label'])
  for b, s in zip(big['image'], small['image']):
    ref = np.asarray(Image.fromarray(b).resize((20, 20), Image.BILINEAR))
    assert np.abs(ref.astype(int) - s.astype(int)).mean() < 3


def test_special_formats_decode_to_rgb(tmp_path):
  for split in ('train', 'val'):
    os.makedirs(tmp_path / split / 'x')
  val = tmp_path / 'val' / 'x'
  rgb = _smooth_image(16, 16, seed=3)
  gray = rgb[..., 0]
  cmyk = np.concatenate([255 - rgb, np.zeros((16, 16, 1), np.uint8)], -1)
  rgba = np.concatenate([rgb, np.full((16, 16, 1), 200, np.uint8)], -1)
  Image.fromarray(gray, 'L').save(val / 'a_gray.jpg', quality=95)
  Image.fromarray(cmyk, 'CMYK').save(val / 'b_cmyk.jpg', quality=95)
  Image.fromarray(rgb).save(val / 'c_png_named.jpg', format='PNG')
  Image.fromarray(rgba, 'RGBA').save(val / 'd_rgba.png')
  Image.fromarray(gray, 'L').save(val / 'e_gray.png')
  Image.fromarray(rgb).save(val / 'f_rgb.bmp')
  names = sorted(os.listdir(val))
  for name in names:
    os.link(val / name, tmp_path / 'train' / 'x' / name)
  # eval_resize = eval_size = 16: the eval image is the decoded file itself.
  config = make_config(data_dir=str(tmp_path), eval_size=16, eval_resize=16,
                       train_sizes=(16,))
  (batch,) = list(ip.eval_dataset(config, local_batch_size=len(names))
                  .as_numpy_iterator())
  assert batch['mask'].all()
  for name, image in zip(names, batch['image']):
    ref = np.asarray(Image.open(val / name).convert('RGB')).astype(int)
    diff = np.abs(image.astype(int) - ref).max()
    assert diff <= 2, (name, diff)
  gray_out = batch['image'][0]
  assert (gray_out[..., 0] == gray_out[..., 1]).all()
  assert (gray_out[..., 0] == gray_out[..., 2]).all()
  # The training path (fused decode-and-crop for JPEG, decode+crop otherwise).
  batches = list(ip.train_dataset(config, epoch=0, image_size=16,
                                  local_batch_size=len(names), steps=2)
                 .as_numpy_iterator())
  assert len(batches) == 2
  assert batches[0]['image'].shape == (len(names), 16, 16, 3)


def test_skip_batches_equals_tail_bitwise(tmp_path):
  root = embedded_data.ensure_embedded_dataset(
      str(tmp_path / 'emb'), num_train_per_class=3, num_val_per_class=1)
  config = make_config(dataset='embedded', data_dir=root, train_sizes=(24, 16),
                       eval_size=24, eval_resize=28, crop_min_area=0.08)
  for image_size, skips in ((24, (1, 5, 9)), (16, (4,))):
    kwargs = dict(epoch=2, image_size=image_size, local_batch_size=4, steps=9)
    full = list(ip.train_dataset(config, **kwargs).as_numpy_iterator())
    assert len(full) == 9
    for k in skips:
      tail = list(ip.train_dataset(config, skip_batches=k, **kwargs)
                  .as_numpy_iterator())
      assert len(tail) == 9 - k
      for a, b in zip(full[k:], tail):
        np.testing.assert_array_equal(a['image'], b['image'])
        np.testing.assert_array_equal(a['label'], b['label'])
  # Randomness is real: crops differ between epochs.
  e0 = next(ip.train_dataset(config, epoch=0, image_size=24,
                             local_batch_size=30, steps=1).as_numpy_iterator())
  e1 = next(ip.train_dataset(config, epoch=1, image_size=24,
                             local_batch_size=30, steps=1).as_numpy_iterator())
  assert sorted(e0['label']) == sorted(e1['label'])
  assert not np.array_equal(e0['image'], e1['image'])


# -----------------------------------------------------------------------------
# Corrupt images and errors.
# -----------------------------------------------------------------------------


def _truncated_jpeg():
  buf = io.BytesIO()
  Image.fromarray(_smooth_image(40, 40, seed=5)).save(buf, format='JPEG')
  data = buf.getvalue()
  sos = data.index(b'\xff\xda')  # start of scan: keep the headers only
  return data[:sos + 16]


@pytest.fixture()
def corrupt_folder(id_folder, tmp_path):
  """The id set plus a truncated JPEG (sorts first) and a garbage file (last)."""
  root, expected = id_folder
  _link_copy(root, tmp_path)
  for split in ('train', 'val'):
    (tmp_path / split / 'ant' / '000_truncated.jpg').write_bytes(
        _truncated_jpeg())
    (tmp_path / split / 'cat' / 'zzz_garbage.jpg').write_bytes(
        b'this is not a jpeg' * 10)
  return str(tmp_path), expected


@pytest.mark.parametrize('process_count', [1, 2])
def test_eval_skips_and_counts_corrupt_images(corrupt_folder, caplog,
                                              process_count):
  root, expected = corrupt_folder
  config = make_config(data_dir=root)
  # 13 files: the batch count includes the unreadable ones.
  want = {1: 5, 2: 3}[process_count]  # ceil(13/3); shards 6, 7: ceil(7/3)
  assert ip.num_eval_batches(config, local_batch_size=3,
                             process_count=process_count) == want
  ip.reset_skipped_images()
  all_ids = []
  with caplog.at_level(logging.WARNING):
    for p in range(process_count):
      batches, ids = _eval_ids(config, local_batch_size=3, process_index=p,
                               process_count=process_count)
      assert len(batches) == want
      all_ids.extend(ids)
  assert sorted(all_ids) == sorted(expected['val'])
  assert ip.num_skipped_images('eval') == 2
  assert ip.num_skipped_images() == 2
  assert '000_truncated.jpg' in caplog.text
  assert 'zzz_garbage.jpg' in caplog.text


def test_train_skips_corrupt_images_and_keeps_exact_resume(corrupt_folder):
  root, expected = corrupt_folder
  config = make_config(data_dir=root)
  ip.reset_skipped_images()
  kwargs = dict(epoch=0, image_size=12, local_batch_size=4, steps=10)
  full, ids = _train_ids(config, **kwargs)
  assert len(full) == 10
  assert set(ids) == set(expected['train'])  # every good image, nothing else
  # 40 positions over a 20-file epoch: each bad file came up at least once.
  assert ip.num_skipped_images('train') >= 2
  assert ip.num_skipped_images('eval') == 0
  for k in (1, 3, 7):
    tail = list(ip.train_dataset(config, skip_batches=k, **kwargs)
                .as_numpy_iterator())
    assert len(tail) == 10 - k
    for a, b in zip(full[k:], tail):
      np.testing.assert_array_equal(a['image'], b['image'])
      np.testing.assert_array_equal(a['label'], b['label'])


def _assert_one_line_value_error(fn, *needles):
  with pytest.raises(ValueError) as info:
    fn()
  message = str(info.value)
  assert '\n' not in message
  for needle in needles:
    assert needle in message, message


def test_missing_data_dir_errors(tmp_path):
  missing = str(tmp_path / 'nowhere')
  _assert_one_line_value_error(
      lambda: ip.get_dataset_info(make_config(data_dir=missing)),
      missing, '--config.data_dir')
  _assert_one_line_value_error(
      lambda: ip.train_dataset(make_config(data_dir=missing), epoch=0,
                               image_size=12, local_batch_size=2, steps=1),
      '--config.data_dir')
  _assert_one_line_value_error(
      lambda: ip.get_dataset_info(make_config(data_dir='')),
      '--config.data_dir')
  os.makedirs(tmp_path / 'only_train' / 'train' / 'x')
  _assert_one_line_value_error(
      lambda: ip.eval_dataset(make_config(data_dir=str(tmp_path / 'only_train')),
                              local_batch_size=2), 'val', '--config.data_dir')


# -----------------------------------------------------------------------------
# TFDS.
# -----------------------------------------------------------------------------


def test_tfds_not_prepared_errors(tmp_path):
  _assert_one_line_value_error(
      lambda: ip.get_dataset_info(make_config(
          dataset='imagenet2012', data_dir=str(tmp_path),
          manual_dir=str(tmp_path / 'manual'))),
      'ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar',
      str(tmp_path / 'manual'), 'tfds build imagenet2012')
  _assert_one_line_value_error(
      lambda: ip.get_dataset_info(make_config(dataset='cifar10',
                                              data_dir=str(tmp_path))),
      'not prepared', 'tfds build cifar10')
  _assert_one_line_value_error(
      lambda: ip.get_dataset_info(make_config(dataset='no_such_dataset_xyz',
                                              data_dir=str(tmp_path))),
      'no_such_dataset_xyz')


@pytest.fixture(scope='module')
def tfds_ids(tmp_path_factory):
  """A real, prepared TFDS data set of solid-colour id images (PNG)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class SppnetTestIds(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Image(shape=(None, None, 3),
                                           encoding_format='png'),
              'label': tfds.features.ClassLabel(names=['ant', 'bee', 'cat']),
          }))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, 17),
              'validation': self._generate_examples(17, 11)}

    def _generate_examples(self, first, n):
      for i in range(first, first + n):
        label = i % 3
        shape = (14 + i % 5, 30 - i % 7, 3)
        yield i, {'image': np.full(shape, _colour(i, label), np.uint8),
                  'label': label}

  data_dir = str(tmp_path_factory.mktemp('tfds'))
  SppnetTestIds(data_dir=data_dir).download_and_prepare()
  return data_dir


def test_tfds_info_train_and_eval(tfds_ids):
  config = make_config(dataset='sppnet_test_ids', data_dir=tfds_ids)
  info = ip.get_dataset_info(config)
  assert info == ip.DatasetInfo(3, ('ant', 'bee', 'cat'), 17, 11)
  # Eval: every example once, 1 and 3 processes (shards of 3, 4, 4).
  for process_count, want in ((1, 3), (3, 1)):
    assert ip.num_eval_batches(config, local_batch_size=4,
                               process_count=process_count) == want
    all_ids = []
    for p in range(process_count):
      batches, ids = _eval_ids(config, local_batch_size=4, process_index=p,
                               process_count=process_count)
      assert len(batches) == want
      all_ids.extend(ids)
    assert sorted(all_ids) == list(range(17, 28))
  # Train: disjoint shards covering the split; exact resume.
  shards = []
  for p in range(2):
    batches, ids = _train_ids(config, epoch=1, image_size=12,
                              local_batch_size=3, steps=3, process_index=p,
                              process_count=2)
    assert len(batches) == 3
    assert batches[0]['image'].shape == (3, 12, 12, 3)
    shards.append(set(ids))
  assert not shards[0] & shards[1]
  assert shards[0] | shards[1] == set(range(17))
  full = list(ip.train_dataset(config, epoch=4, image_size=16,
                               local_batch_size=5, steps=6)
              .as_numpy_iterator())
  tail = list(ip.train_dataset(config, epoch=4, image_size=16,
                               local_batch_size=5, steps=6, skip_batches=4)
              .as_numpy_iterator())
  assert len(full) == 6 and len(tail) == 2
  for a, b in zip(full[4:], tail):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


def _write_mock_metadata(data_dir, name, splits):
  """dataset_info.json with split sizes, so that mock_data knows the counts."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(name, data_dir=data_dir)
  infos = [
      tfds.core.SplitInfo(
          name=split, shard_lengths=[n], num_bytes=0,
          filename_template=tfds.core.ShardedFileTemplate(
              data_dir=builder.data_dir, dataset_name=name, split=split,
              template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}',
              filetype_suffix='tfrecord'))
      for split, n in splits.items()]
  builder.info.set_splits(tfds.core.SplitDict(infos))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


def test_tfds_mock_cifar10(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  meta = str(tmp_path / 'meta')
  _write_mock_metadata(meta, 'cifar10', {'train': 50_000, 'test': 10_000})
  config = make_config(dataset='cifar10', data_dir='', eval_split='test',
                       train_sizes=(24, 20), eval_size=20, eval_resize=24)
  with tfds.testing.mock_data(num_examples=12, data_dir=meta):
    info = ip.get_dataset_info(config)
    assert info.num_classes == 10
    assert len(info.class_names) == 10
    assert (info.num_train_examples, info.num_eval_examples) == (50_000,
                                                                 10_000)
    assert ip.num_eval_batches(config, local_batch_size=64,
                               process_count=4) == 40  # 2500 / 64
    batches = list(ip.train_dataset(config, epoch=0, image_size=20,
                                    local_batch_size=4, steps=3)
                   .as_numpy_iterator())
    assert len(batches) == 3
    assert batches[0]['image'].shape == (4, 20, 20, 3)
    assert batches[0]['image'].dtype == np.uint8
    assert batches[0]['label'].dtype == np.int32
    assert ((0 <= batches[0]['label']) & (batches[0]['label'] < 10)).all()


def test_per_step_sizes_alternate_by_batch_and_survive_a_skip(tmp_path):
  _smooth_folder(tmp_path, 12)
  config = make_config(data_dir=str(tmp_path), train_sizes=(32, 20))
  kwargs = dict(epoch=1, local_batch_size=4, steps=3)
  whole = list(ip.train_dataset(config, image_size=(32, 20), **kwargs)
               .as_numpy_iterator())
  assert [b['image'].shape[1:3] for b in whole] == [(32, 32), (20, 20), (32, 32)]
  tail = list(ip.train_dataset(config, image_size=(32, 20), skip_batches=1,
                               **kwargs).as_numpy_iterator())
  for got, want in zip(tail, whole[1:]):
    np.testing.assert_array_equal(got['image'], want['image'])
  # The 20-pixel batch is the 32-pixel crop of the same examples, resized.
  (big,) = list(ip.train_dataset(config, image_size=32, **kwargs)
                .as_numpy_iterator())[1:2]
  for b, s in zip(big['image'], whole[1]['image']):
    ref = np.asarray(Image.fromarray(b).resize((20, 20), Image.BILINEAR))
    assert np.abs(ref.astype(int) - s.astype(int)).mean() < 3
