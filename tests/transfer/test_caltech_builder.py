"""TFDS caltech101 prepared offline by the genuine builder from a fake
official archive (caltech-101.zip holding caltech-101/
101_ObjectCategories.tar.gz, as the real one does), read back by the transfer
reader (every image of both splits, labels and pixels as written), refused
under the real registered checksum, and scored by a transfer run."""

import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from sppnet_jax.transfer import config as config_lib
from sppnet_jax.transfer import data, prepare_caltech
from sppnet_jax.transfer import main as transfer_main
from tests.detection import voc_fixture

CLASSES = {'accordion': 33, 'airplanes': 31, 'BACKGROUND_Google': 32}
COLOURS = {'accordion': (200, 30, 30), 'airplanes': (30, 200, 30),
           'BACKGROUND_Google': (30, 30, 200)}


def _write_archive(manual_dir) -> dict:
  """caltech-101.zip in manual_dir; returns {class/file: pixels}."""
  rng = np.random.default_rng(5)
  images, tar_bytes = {}, io.BytesIO()
  with tarfile.open(fileobj=tar_bytes, mode='w:gz') as tar:
    for name, count in CLASSES.items():
      for i in range(count):
        pixels = np.clip(rng.normal(COLOURS[name], 30, (40, 56, 3)), 0,
                         255).astype(np.uint8)
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, format='JPEG', quality=95)
        file_name = f'image_{i + 1:04d}.jpg'
        info = tarfile.TarInfo(f'101_ObjectCategories/{name}/{file_name}')
        info.size = len(encoded.getvalue())
        tar.addfile(info, io.BytesIO(encoded.getvalue()))
        encoded.seek(0)
        images[f'{name.lower()}/{file_name}'] = np.asarray(Image.open(encoded))
  os.makedirs(manual_dir, exist_ok=True)
  with zipfile.ZipFile(os.path.join(manual_dir, prepare_caltech.ARCHIVE),
                       'w') as archive:
    archive.writestr('caltech-101/101_ObjectCategories.tar.gz',
                     tar_bytes.getvalue())
  return images


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp('caltech')
  manual_dir, data_dir = str(root / 'manual'), str(root / 'tfds')
  images = _write_archive(manual_dir)
  with voc_fixture.no_network() as attempts, voc_fixture.fake_archive_checksums(
      manual_dir, builder='caltech101', names=(prepare_caltech.ARCHIVE,)):
    builder = prepare_caltech.prepare(data_dir, manual_dir)
  assert not attempts
  return builder, images, manual_dir, data_dir


def test_the_genuine_builder_reads_the_fake_archive(prepared):
  builder, images, _, data_dir = prepared
  assert builder.info.splits['train'].num_examples == 3 * 30
  assert builder.info.splits['test'].num_examples == 3 + 1 + 2
  split = data.tfds_class_images('caltech101', data_dir, '')
  assert split.total == sum(CLASSES.values())
  read = list(split.images)
  assert sorted(item.key for item in read) == sorted(images)
  for item in read:
    assert split.class_names[item.label] == item.key.split('/')[0]
    np.testing.assert_array_equal(item.image, images[item.key])


def test_the_real_checksum_refuses_the_fake_archive(prepared, tmp_path):
  _, _, manual_dir, _ = prepared
  with voc_fixture.no_network():
    with pytest.raises(
        tfds.download.download_manager.NonMatchingChecksumError):
      prepare_caltech.prepare(str(tmp_path / 'tfds'), manual_dir)


def test_a_transfer_run_on_it(prepared, detection_setup, tmp_path):
  _, _, _, data_dir = prepared
  config = config_lib.base_config()
  config.dataset = 'caltech101'
  config.data_dir = data_dir
  config.backbone = detection_setup[1]
  config.layer = 'spp6'
  config.size = 64
  config.full_image_step = 16
  config.svm.c_grid = (1.0, 10.0)
  config.svm.folds = 2
  config.splits.num_splits = 2
  config.splits.train_per_class = 20
  config.splits.test_per_class = 50
  record = transfer_main.run(config, str(tmp_path))
  assert record['images'] == 96 and record['skipped_images'] == 0
  assert len(record['split_accuracies']) == 2
  assert record['accuracy'] > 0.9  # three colours apart


def test_missing_archive_is_one_line(tmp_path):
  with pytest.raises(Exception, match='caltech-101.zip not found'):
    prepare_caltech.prepare(str(tmp_path / 'tfds'), str(tmp_path / 'empty'))
