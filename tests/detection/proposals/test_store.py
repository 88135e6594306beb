"""The proposal store against hand-written file names and hand-converted
boxes, and its one-line errors."""

import os

import numpy as np
import pytest

from sppnet_jax.detection.proposals import store as store_lib
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.stage_files import (file_name_of,
                                              image_id_of_file_name)
from sppnet_jax.errors import DataError


# -----------------------------------------------------------------------------
# ProposalStore
# -----------------------------------------------------------------------------

AWKWARD_IDS = ('000005', 'train/Cat 1.jpg', '..', '.hidden', 'a%2Fb', 'A', 'a',
               'Ünïcode/ß', 'x.npz', '-_')


def test_file_names_are_safe_reversible_and_distinct_without_case(tmp_path):
  assert file_name_of('000005') == '000005.npz'
  assert file_name_of('train/Cat 1.jpg') == 'train%2F%43at%201%2Ejpg.npz'
  assert file_name_of('..') == '%2E%2E.npz'
  assert file_name_of('ß') == '%C3%9F.npz'
  names = [file_name_of(i) for i in AWKWARD_IDS]
  for image_id, name in zip(AWKWARD_IDS, names):
    assert '/' not in name and not name.startswith('.')
    assert name.endswith('.npz')
    assert image_id_of_file_name(name) == image_id
  assert len({n.lower() for n in names}) == len(AWKWARD_IDS)
  for bad in ('', None, 'x' * 200 + 'Y' * 11):
    with pytest.raises(DataError):
      file_name_of(bad)
  # The longest id that fits: its temporary file's name fits too.
  store = ProposalStore(str(tmp_path))
  store.save('x' * 230, np.zeros((1, 4)))
  assert store.has('x' * 230)


def test_store_round_trip_leaves_only_the_named_files(tmp_path):
  store = ProposalStore(str(tmp_path / 'not_yet'))
  assert not os.path.exists(store.directory)  # nothing made before a save
  rng = np.random.default_rng(0)
  saved = {}
  for image_id in AWKWARD_IDS:
    corner = rng.uniform(0, 50, (int(rng.integers(0, 5)), 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0, 20, corner.shape)],
                           1)
    saved[image_id] = boxes
    assert not store.has(image_id)
    store.save(image_id, boxes)
    assert store.has(image_id)
  assert sorted(os.listdir(store.directory)) == sorted(
      file_name_of(i) for i in AWKWARD_IDS)
  for image_id, boxes in saved.items():
    got = store.load(image_id)
    assert got.dtype == np.float32 and got.shape == (len(boxes), 4)
    np.testing.assert_array_equal(got, boxes.astype(np.float32))
  store.save('000005', np.array([[1, 2, 3, 4]]))
  np.testing.assert_array_equal(store.load('000005'), [[1, 2, 3, 4]])


def test_save_is_atomic(tmp_path, monkeypatch):
  store = ProposalStore(str(tmp_path))
  store.save('img', np.array([[0, 0, 5, 5]], np.float32))

  def dies_half_way(f, **arrays):
    f.write(b'PK\x03\x04 half an npz')
    raise KeyboardInterrupt  # e.g. the job is stopped mid-write

  monkeypatch.setattr(store_lib.np, 'savez_compressed', dies_half_way)
  with pytest.raises(KeyboardInterrupt):
    store.save('img', np.array([[1, 1, 9, 9]], np.float32))
  with pytest.raises(KeyboardInterrupt):
    store.save('new', np.array([[1, 1, 9, 9]], np.float32))
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path)) == ['img.npz']  # no temporary files
  np.testing.assert_array_equal(store.load('img'), [[0, 0, 5, 5]])
  assert not store.has('new')


def test_truncated_or_garbage_files_are_one_line_data_errors(tmp_path):
  store = ProposalStore(str(tmp_path))
  corner = np.random.default_rng(0).uniform(0, 50, (100, 2))
  store.save('good', np.concatenate([corner, corner + 10], 1))
  with open(store.path('good'), 'rb') as f:
    whole = f.read()
  for i, cut in enumerate((0, 10, len(whole) // 2, len(whole) - 30,
                           len(whole) - 1)):
    with open(store.path(f'cut{i}'), 'wb') as f:
      f.write(whole[:cut])
    with pytest.raises(DataError, match='unreadable') as error:
      store.load(f'cut{i}')
    assert '\n' not in str(error.value) and f'cut{i}' in str(error.value)
  with open(store.path('garbage'), 'wb') as f:
    f.write(os.urandom(300))
  with pytest.raises(DataError, match='unreadable'):
    store.load('garbage')


def test_missing_file_error_names_image_directory_and_what_to_do(tmp_path):
  store = ProposalStore(str(tmp_path))
  with pytest.raises(DataError) as error:
    store.load('2008/000123')
  message = str(error.value)
  assert '\n' not in message
  assert "'2008/000123'" in message and str(tmp_path) in message
  assert '2008%2F000123.npz' in message and 'compute_proposals' in message


def _write(store, image_id, **arrays):
  os.makedirs(store.directory, exist_ok=True)
  np.savez(store.path(image_id), **arrays)


def test_box_formats_are_converted_to_the_library_convention(tmp_path):
  store = ProposalStore(str(tmp_path))
  # A 1-based inclusive VOC box of columns 1..10 and rows 2..20 covers the
  # continuous [0, 10) x [1, 20); an integer array, as MATLAB files hold.
  _write(store, 'voc', boxes=np.array([[1, 2, 10, 20], [5, 5, 5, 5]], np.int32),
         box_format='voc')
  np.testing.assert_array_equal(store.load('voc'),
                                [[1, 0, 20, 10], [4, 4, 5, 5]])
  _write(store, 'xyxy', boxes=np.array([[1.5, 2, 3, 4.5]]), box_format='xyxy')
  np.testing.assert_array_equal(store.load('xyxy'), [[2, 1.5, 4.5, 3]])
  _write(store, 'yxyx', boxes=np.array([[1.5, 2, 3, 4.5]]), box_format='yxyx')
  np.testing.assert_array_equal(store.load('yxyx'), [[1.5, 2, 3, 4.5]])
  _write(store, 'default', boxes=np.array([[1.5, 2, 3, 4.5]]))
  np.testing.assert_array_equal(store.load('default'), [[1.5, 2, 3, 4.5]])
  _write(store, 'bytes', boxes=np.array([[1, 2, 3, 4]]),
         box_format=np.array(b'xyxy'))
  np.testing.assert_array_equal(store.load('bytes'), [[2, 1, 4, 3]])


def test_loading_clips_to_the_image_and_drops_boxes_with_no_area(tmp_path):
  store = ProposalStore(str(tmp_path))
  _write(store, 'img', boxes=np.array([
      [-5, 10, 50, 200],   # clipped to (0, 10, 40, 100) in a 40 x 100 image
      [3, 3, 3, 9],        # zero height: dropped
      [45, 0, 60, 10],     # below the image: nothing left after clipping
      [1, 2, 3, 4]]))      # unchanged
  np.testing.assert_array_equal(store.load('img', (40, 100)),
                                [[0, 10, 40, 100], [1, 2, 3, 4]])
  np.testing.assert_array_equal(store.load('img'),
                                [[-5, 10, 50, 200], [45, 0, 60, 10],
                                 [1, 2, 3, 4]])


@pytest.mark.parametrize('arrays, match', [
    ({'boxes': np.zeros((3,))}, r'must be \(N, 4\)'),
    ({'boxes': np.zeros((2, 5))}, r'must be \(N, 4\)'),
    ({'boxes': np.array([[0, 0, np.nan, 1]])}, 'NaN'),
    ({'boxes': np.array([[0, 0, np.inf, 1]])}, 'NaN or infinite'),
    ({'boxes': np.array([[0, 0, 1e40, 1]])}, 'infinite'),
    ({'boxes': np.array([['a', 'b', 'c', 'd']])}, 'must be numbers'),
    ({'boxes': np.array([[0, 0, 5, 5], [5, 0, 2, 9]])}, 'reversed'),
    ({'boxes': np.array([[0, 0, 5, 5]]), 'box_format': 'xywh'}, 'box_format'),
    ({'rois': np.array([[0, 0, 5, 5]])},
     r"lacks \['boxes'\] \(it has \['rois'\]\)"),
])
def test_bad_arrays_are_one_line_data_errors(tmp_path, arrays, match):
  store = ProposalStore(str(tmp_path))
  _write(store, 'bad', **arrays)
  with pytest.raises(DataError, match=match) as error:
    store.load('bad')
  assert '\n' not in str(error.value) and "'bad'" in str(error.value)
  if 'box_format' not in arrays and 'boxes' in arrays:  # save refuses them too
    with pytest.raises(DataError, match=match):
      store.save('bad2', arrays['boxes'])
    assert not store.has('bad2')


