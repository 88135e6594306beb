"""Tests of sppnet_jax.embedded_data (the generated default data set)."""

import os

import numpy as np
import pytest
from PIL import Image

from sppnet_jax.classification import embedded_data
from tests.helpers import tree_bytes


def test_layout_counts_and_images(tmp_path):
  root = embedded_data.ensure_embedded_dataset(
      str(tmp_path / 'set'), num_train_per_class=4, num_val_per_class=3)
  assert root == str(tmp_path / 'set')
  assert sorted(os.listdir(root)) == ['.complete', 'train', 'val']
  assert len(embedded_data.CLASSES) == 10
  assert list(embedded_data.CLASSES) == sorted(embedded_data.CLASSES)
  sizes = set()
  for split, count in (('train', 4), ('val', 3)):
    assert sorted(os.listdir(os.path.join(root, split))) == list(
        embedded_data.CLASSES)
    for name in embedded_data.CLASSES:
      files = sorted(os.listdir(os.path.join(root, split, name)))
      assert len(files) == count
      for f in files:
        assert f.endswith('.jpg')
        with Image.open(os.path.join(root, split, name, f)) as image:
          assert image.format == 'JPEG' and image.mode == 'RGB'
          w, h = image.size
          assert 96 <= w <= 192 and 96 <= h <= 192
          sizes.add((w, h))
  assert len(sizes) > 40  # sizes vary, and are mostly not square
  assert sum(w != h for w, h in sizes) > 30
  # No temporary folder is left next to the set.
  assert os.listdir(tmp_path) == ['set']


def test_deterministic_and_generated_once(tmp_path):
  a = embedded_data.ensure_embedded_dataset(
      str(tmp_path / 'a'), num_train_per_class=2, num_val_per_class=1)
  b = embedded_data.ensure_embedded_dataset(
      str(tmp_path / 'b'), num_train_per_class=2, num_val_per_class=1)
  assert tree_bytes(a) == tree_bytes(b)
  # A second call reuses the set: nothing is rewritten.
  path = os.path.join(a, 'val', 'circle', 'circle_0000.jpg')
  os.utime(path, (1, 1))
  assert embedded_data.ensure_embedded_dataset(
      a, num_train_per_class=2, num_val_per_class=1) == a
  assert os.stat(path).st_mtime == 1


def test_refuses_a_foreign_folder_and_reuses_an_empty_one(tmp_path):
  foreign = tmp_path / 'foreign'
  foreign.mkdir()
  (foreign / 'mine.txt').write_text('user data')
  with pytest.raises(ValueError, match='delete it, or point'):
    embedded_data.ensure_embedded_dataset(str(foreign))
  assert os.listdir(foreign) == ['mine.txt']
  empty = tmp_path / 'empty'
  empty.mkdir()
  embedded_data.ensure_embedded_dataset(
      str(empty), num_train_per_class=1, num_val_per_class=1)
  assert embedded_data.is_complete(str(empty))


def test_crash_midway_leaves_no_partial_set(tmp_path, monkeypatch):
  calls = []

  def failing(name, rng):
    calls.append(name)
    if len(calls) == 5:
      raise RuntimeError('simulated crash')
    return original(name, rng)

  original = embedded_data.render_example
  monkeypatch.setattr(embedded_data, 'render_example', failing)
  with pytest.raises(RuntimeError):
    embedded_data.ensure_embedded_dataset(
        str(tmp_path / 'set'), num_train_per_class=1, num_val_per_class=1)
  assert os.listdir(tmp_path) == []  # neither the set nor a temporary folder


def test_default_root(monkeypatch, tmp_path):
  monkeypatch.setenv('SPPNET_DATA_DIR', str(tmp_path / 'x'))
  assert embedded_data.default_root() == str(tmp_path / 'x')
  monkeypatch.delenv('SPPNET_DATA_DIR')
  assert embedded_data.default_root().endswith(
      os.path.join('.cache', 'sppnet_jax', 'embedded-v1'))


def test_render_example_is_not_blank():
  """Every class draws something on the background."""
  rng = np.random.default_rng(0)
  for name in embedded_data.CLASSES:
    image, quality = embedded_data.render_example(name, rng)
    assert 75 <= quality <= 95
    pixels = np.asarray(image)
    assert pixels.std() > 10  # not blank


@pytest.mark.slow
def test_full_size_set(tmp_path):
  root = embedded_data.ensure_embedded_dataset(str(tmp_path / 'full'))
  for split, count in (('train', 300), ('val', 53)):
    for name in embedded_data.CLASSES:
      assert len(os.listdir(os.path.join(root, split, name))) == count
