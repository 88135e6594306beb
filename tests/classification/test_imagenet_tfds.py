"""A tiny imagenet2012, prepared by the genuine TFDS builder from archives packed
the way the official ones are, trained and evaluated through main.py."""

import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_main

NUM_VAL = 12  # ILSVRC2012_val_00000001..12.JPEG
TRAIN_PER_CLASS = 4


def _jpeg(seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  h, w = rng.integers(60, 120, size=2)
  pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG', quality=90)
  return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _write_manual_dir(manual_dir: str) -> list[str]:
  """ILSVRC2012_img_val.tar: the first NUM_VAL validation images, whose labels the
  builder takes from its own validation_labels.txt; ILSVRC2012_img_train.tar: a tar
  of one tar per class (those labels' WordNet ids) of nXXXXXXXX_N.JPEG files."""
  import tensorflow_datasets as tfds
  labels_file = os.path.join(os.path.dirname(tfds.__file__), 'datasets',
                             'imagenet2012', 'validation_labels.txt')
  with open(labels_file) as f:
    wnids = f.read().split()[:NUM_VAL]
  os.makedirs(manual_dir)
  with tarfile.open(os.path.join(manual_dir, 'ILSVRC2012_img_val.tar'), 'w') as tar:
    for i in range(NUM_VAL):
      _add(tar, f'ILSVRC2012_val_{i + 1:08d}.JPEG', _jpeg(i))
  classes = sorted(set(wnids))
  with tarfile.open(os.path.join(manual_dir, 'ILSVRC2012_img_train.tar'), 'w') as tar:
    for c, wnid in enumerate(classes):
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode='w') as class_tar:
        for j in range(TRAIN_PER_CLASS):
          _add(class_tar, f'{wnid}_{j}.JPEG', _jpeg(1000 + 10 * c + j))
      _add(tar, f'{wnid}.tar', inner.getvalue())
  return classes


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  import tensorflow_datasets as tfds
  root = tmp_path_factory.mktemp('imagenet')
  manual_dir, data_dir = str(root / 'manual'), str(root / 'tfds')
  classes = _write_manual_dir(manual_dir)
  tfds.builder('imagenet2012', data_dir=data_dir).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return data_dir, classes


def test_genuine_builder_data_trains_and_evaluates_through_main(prepared, tmp_path):
  data_dir, classes = prepared
  from configs.classification import tiny
  from sppnet_jax.classification import input_pipeline
  config = tiny.get_config()
  config.dataset, config.data_dir = 'imagenet2012', data_dir
  config.eval_split = 'validation'
  info = input_pipeline.get_dataset_info(config)
  assert info.num_classes == 1000
  assert info.num_train_examples == TRAIN_PER_CLASS * len(classes)
  assert info.num_eval_examples == NUM_VAL
  command = [f'--workdir={tmp_path}', '--config.dataset=imagenet2012',
             f'--config.data_dir={data_dir}', '--config.eval_split=validation',
             '--config.batch_size=8', '--config.eval_batch_size=8',
             '--config.num_epochs=1']
  result = run_main(*command)
  assert result.returncode == 0, result.stderr[-3000:]
  last = result.stdout.strip().splitlines()[-1]
  assert last.startswith('final validation: top-1') and last.endswith(
      f'on {NUM_VAL} examples'), last
  # The test protocols read the same TFDS records: every image once.
  for protocol in ('ten_view', 'full_image'):
    result = run_main(*command, '--mode=eval', f'--config.eval.protocol={protocol}')
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert f'({protocol}) validation: top-1' in last and last.endswith(
        f'on {NUM_VAL} examples'), last
