"""Selective-search proposals and their store.

The box sets are checked against OpenCV's own API driven here (its
`switchToSelectiveSearchFast` preset on the BGR image, and one search holding
all of R-CNN's fast-mode settings at once), filtered by a side test written
here; determinism across calls, call orders and fresh processes; the store
against hand-written file names and hand-converted boxes; resumption against a
job killed with SIGKILL in a subprocess and an uninterrupted run.
"""

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from sppnet_jax.detection import proposals
from sppnet_jax.detection.proposals import (OPENCV_FAST, RCNN_FAST,
                                            ProposalStore,
                                            SelectiveSearchSettings,
                                            compute_proposals, file_name_of,
                                            image_id_of_file_name,
                                            selective_search)
from sppnet_jax.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SEGMENTATION = cv2.ximgproc.segmentation


def _scene(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
  """uint8 RGB: a smooth random colour field, a few flat rectangles, noise."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3),
                        dtype=np.uint8)
  image = cv2.resize(coarse, (width, height),
                     interpolation=cv2.INTER_CUBIC).astype(np.float32)
  for _ in range(4):
    h = int(rng.integers(height // 5, height // 2))
    w = int(rng.integers(width // 5, width // 2))
    y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    image[y:y + h, x:x + w] = rng.integers(0, 256, 3)
  image += rng.normal(0, 6, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


def _opencv_set(search, min_side):
  """The boxes of an OpenCV search as a set of (y0, x0, y1, x1), both sides
  >= min_side."""
  return {(y, x, y + h, x + w) for x, y, w, h in search.process().tolist()
          if w >= min_side and h >= min_side}


def _as_set(boxes):
  return {tuple(int(v) for v in row) for row in boxes.tolist()}


# -----------------------------------------------------------------------------
# selective_search
# -----------------------------------------------------------------------------


def test_boxes_are_distinct_inside_the_image_and_at_least_min_side():
  settings = dataclasses.replace(RCNN_FAST, min_side=12)
  for seed, (height, width) in ((0, (96, 128)), (1, (130, 80))):
    boxes = selective_search(_scene(seed, height, width), settings)
    assert boxes.dtype == np.float32 and boxes.ndim == 2
    assert boxes.shape[1] == 4 and boxes.shape[0] > 20
    np.testing.assert_array_equal(boxes, np.round(boxes))
    for y0, x0, y1, x1 in boxes.tolist():
      assert 0 <= y0 and 0 <= x0 and y1 <= height and x1 <= width
      assert y1 - y0 >= 12 and x1 - x0 >= 12
    assert len(_as_set(boxes)) == len(boxes)


def test_opencv_fast_preset_gives_the_set_of_opencv_s_own_fast_mode():
  image = _scene(2)
  search = SEGMENTATION.createSelectiveSearchSegmentation()
  search.setBaseImage(np.ascontiguousarray(image[..., ::-1]))  # OpenCV: BGR
  search.switchToSelectiveSearchFast()
  expected = _opencv_set(search, 10)
  got = selective_search(image, dataclasses.replace(OPENCV_FAST, min_side=10,
                                                    max_boxes=None))
  assert len(expected) > 30
  assert _as_set(got) == expected and len(got) == len(expected)


def test_rcnn_fast_gives_the_set_of_one_opencv_search_with_r_cnn_s_settings():
  image = _scene(3)
  bgr = np.ascontiguousarray(image[..., ::-1])
  search = SEGMENTATION.createSelectiveSearchSegmentation()
  search.addImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))
  search.addImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab))
  for k in (50, 100):
    graph = SEGMENTATION.createGraphSegmentation()
    graph.setK(k)
    graph.setSigma(0.8)
    graph.setMinSize(k)
    search.addGraphSegmentation(graph)
  multiple = SEGMENTATION.createSelectiveSearchSegmentationStrategyMultiple
  search.addStrategy(multiple(
      SEGMENTATION.createSelectiveSearchSegmentationStrategyColor(),
      SEGMENTATION.createSelectiveSearchSegmentationStrategyFill(),
      SEGMENTATION.createSelectiveSearchSegmentationStrategyTexture(),
      SEGMENTATION.createSelectiveSearchSegmentationStrategySize()))
  search.addStrategy(multiple(
      SEGMENTATION.createSelectiveSearchSegmentationStrategyFill(),
      SEGMENTATION.createSelectiveSearchSegmentationStrategyTexture(),
      SEGMENTATION.createSelectiveSearchSegmentationStrategySize()))
  expected = _opencv_set(search, 20)
  got = selective_search(image, dataclasses.replace(RCNN_FAST, max_boxes=None))
  assert len(expected) > 30
  assert _as_set(got) == expected and len(got) == len(expected)


def test_max_boxes_keeps_the_best_ranked_which_favour_large_boxes():
  image = _scene(4)
  full = selective_search(image, dataclasses.replace(RCNN_FAST, min_side=8,
                                                     max_boxes=None))
  capped = selective_search(image, dataclasses.replace(RCNN_FAST, min_side=8,
                                                       max_boxes=7))
  np.testing.assert_array_equal(capped, full[:7])
  # Not a sort by coordinates (that would keep the top-left boxes) ...
  assert [tuple(b) for b in full.tolist()] != sorted(map(tuple, full.tolist()))
  # ... but the paper's RND x position-from-the-top: large boxes come early.
  area = (full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1])
  quarter = len(full) // 4
  assert area[:quarter].mean() > 1.5 * area.mean()
  assert area[:quarter].mean() > 3 * area[-quarter:].mean()


def _reference_ranking(image, settings):
  """The ranking of the module docstring by loops: one OpenCV search per
  colour space and k, positions by counting larger boxes, the smallest value
  of each box, the side filter, the cap."""
  digest = hashlib.blake2b(image.tobytes(), digest_size=8, person=b'sppnet-ss')
  digest.update(np.array(image.shape, np.int64).tobytes())
  digest = int.from_bytes(digest.digest(), 'little')
  parts = {'color': SEGMENTATION.createSelectiveSearchSegmentationStrategyColor,
           'fill': SEGMENTATION.createSelectiveSearchSegmentationStrategyFill,
           'texture':
               SEGMENTATION.createSelectiveSearchSegmentationStrategyTexture,
           'size': SEGMENTATION.createSelectiveSearchSegmentationStrategySize}
  best = {}
  s = 0
  for code in (cv2.COLOR_BGR2HSV, cv2.COLOR_BGR2Lab):
    for k in settings.ks:
      search = SEGMENTATION.createSelectiveSearchSegmentation()
      search.addImage(cv2.cvtColor(np.ascontiguousarray(image[..., ::-1]),
                                   code))
      graph = SEGMENTATION.createGraphSegmentation()
      graph.setK(k)
      graph.setSigma(settings.sigma)
      graph.setMinSize(k)
      search.addGraphSegmentation(graph)
      for strategy in settings.strategies:
        search.addStrategy(
            SEGMENTATION.createSelectiveSearchSegmentationStrategyMultiple(
                *[parts[p]() for p in ('color', 'fill', 'texture', 'size')
                  if p in strategy.split('+')]))
      boxes = sorted(_opencv_set(search, 0))
      rnd = np.random.default_rng([settings.seed, digest, s]).random(len(boxes))
      for box, u in zip(boxes, rnd.tolist()):
        area = (box[2] - box[0]) * (box[3] - box[1])
        larger = sum((b[2] - b[0]) * (b[3] - b[1]) > area for b in boxes)
        best[box] = min(best.get(box, np.inf), u * (1 + larger))
      s += 1
  ranked = sorted(best, key=lambda box: (best[box], box))
  ranked = [b for b in ranked if b[2] - b[0] >= settings.min_side and
            b[3] - b[1] >= settings.min_side]
  return ranked[:settings.max_boxes]


def test_ranking_against_a_loop_over_opencv_searches():
  settings = dataclasses.replace(RCNN_FAST, min_side=8, max_boxes=60)
  image = _scene(7, 64, 80)
  expected = _reference_ranking(image, settings)
  assert len(expected) == 60
  assert selective_search(image, settings).tolist() == [list(b) for b in
                                                        expected]


_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
from sppnet_jax.detection.proposals import selective_search
from tests.detection.test_proposals import _scene
b = selective_search(_scene(6))  # the other order than the test's
np.savez(sys.argv[1], b=b, a=selective_search(_scene(5)))
"""


def test_same_boxes_in_any_call_order_and_in_a_fresh_process(tmp_path):
  first_a, first_b = selective_search(_scene(5)), selective_search(_scene(6))
  again_b, again_a = selective_search(_scene(6)), selective_search(_scene(5))
  np.testing.assert_array_equal(first_a, again_a)
  np.testing.assert_array_equal(first_b, again_b)
  out = str(tmp_path / 'fresh.npz')
  subprocess.run([sys.executable, '-c', _IN_A_FRESH_PROCESS, out], cwd=REPO,
                 check=True, timeout=120)
  with np.load(out) as fresh:
    np.testing.assert_array_equal(fresh['a'], first_a)
    np.testing.assert_array_equal(fresh['b'], first_b)
  # The seed reorders the ranking, and nothing else.
  reseeded = selective_search(_scene(5), dataclasses.replace(RCNN_FAST, seed=1))
  assert _as_set(reseeded) == _as_set(first_a)
  assert not np.array_equal(reseeded, first_a)


def test_bad_images_and_settings_are_one_line_errors():
  for image in (np.zeros((40, 40), np.uint8), np.zeros((40, 40, 3), np.float32),
                np.zeros((40, 40, 4), np.uint8), np.zeros((0, 5, 3), np.uint8)):
    with pytest.raises(DataError, match=r'uint8 \(H, W, 3\) RGB') as error:
      selective_search(image)
    assert '\n' not in str(error.value)
  for bad in ({'color_spaces': ('rgb',)}, {'ks': ()}, {'ks': (0,)},
              {'strategies': ('color+shape',)}, {'strategies': ('size+size',)},
              {'sigma': 0.0}, {'min_side': -1}, {'max_boxes': 0},
              {'min_segment_size': 0}, {'seed': -1}, {'ks': ('50',)},
              {'ks': (50.5,)}, {'sigma': '0.8'}, {'max_boxes': 2.5}):
    with pytest.raises(ConfigError):
      SelectiveSearchSettings(**bad)
  # Lists (as from a config) become tuples: the settings stay hashable.
  assert hash(SelectiveSearchSettings(ks=[50, 100])) == hash(RCNN_FAST)


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

  monkeypatch.setattr(proposals.np, 'savez_compressed', dies_half_way)
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
    ({'rois': np.array([[0, 0, 5, 5]])}, 'no "boxes" array'),
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


# -----------------------------------------------------------------------------
# compute_proposals
# -----------------------------------------------------------------------------

FAST_TEST = dataclasses.replace(RCNN_FAST, min_side=8, max_boxes=50)


def _examples(count, first=0):
  for i in range(first, first + count):
    yield f'set/{i:03d}', _scene(100 + i)


def _files(directory):
  out = {}
  for name in sorted(os.listdir(directory)):
    if name.endswith('.npz'):
      with np.load(os.path.join(directory, name)) as data:
        out[name] = data['boxes']
  return out


def _assert_same_files(a, b):
  assert sorted(a) == sorted(b)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_in_process_and_two_workers_write_identical_files(tmp_path):
  serial = ProposalStore(str(tmp_path / 'serial'))
  stats = compute_proposals(_examples(6), serial, FAST_TEST, num_workers=0)
  assert (stats.computed, stats.cached) == (6, 0)
  parallel = ProposalStore(str(tmp_path / 'parallel'))
  # An id repeated in the examples is computed once.
  examples = list(_examples(6)) + list(_examples(1))
  stats = compute_proposals(examples, parallel, FAST_TEST, num_workers=2,
                            log_every=2)
  assert (stats.computed, stats.cached) == (6, 1)
  assert stats.boxes == sum(len(b) for b in _files(serial.directory).values())
  _assert_same_files(_files(serial.directory), _files(parallel.directory))
  for image_id, image in _examples(6):
    np.testing.assert_array_equal(parallel.load(image_id),
                                  selective_search(image, FAST_TEST))
  again = compute_proposals(_examples(6), parallel, FAST_TEST, num_workers=2)
  assert (again.computed, again.cached) == (0, 6)
  assert sorted(os.listdir(parallel.directory)) == sorted(
      [proposals.SETTINGS_FILE] + [file_name_of(i) for i, _ in _examples(6)])


def test_other_settings_in_the_same_directory_are_refused(tmp_path):
  store = ProposalStore(str(tmp_path))
  compute_proposals(_examples(1), store, FAST_TEST, num_workers=0)
  with pytest.raises(ConfigError, match='other selective search settings'):
    compute_proposals(_examples(2), store,
                      dataclasses.replace(FAST_TEST, max_boxes=20),
                      num_workers=0)
  with pytest.raises(ConfigError):
    compute_proposals(_examples(1), store, FAST_TEST, num_workers=-1)


_KILLED_JOB = """
import sys, time
from sppnet_jax.detection.proposals import ProposalStore, compute_proposals
from tests.detection.test_proposals import FAST_TEST, _examples

def stalls_after_8():
  yield from _examples(8)
  time.sleep(600)  # the data stalls: the job is killed here or before

if __name__ == '__main__':
  compute_proposals(stalls_after_8(), ProposalStore(sys.argv[1]), FAST_TEST,
                    num_workers=2)
"""

NUM_KILLED = 12


def test_a_killed_job_resumes_with_only_the_missing_images(tmp_path):
  directory = str(tmp_path / 'killed')
  script = tmp_path / 'job.py'
  script.write_text(_KILLED_JOB)
  job = subprocess.Popen([sys.executable, str(script), directory], cwd=REPO,
                         env={**os.environ, 'PYTHONPATH': REPO},
                         start_new_session=True)
  try:
    deadline = time.monotonic() + 120
    while (not os.path.isdir(directory) or
           len([n for n in os.listdir(directory) if n.endswith('.npz')]) < 3):
      assert job.poll() is None, 'the job ended before it was killed'
      assert time.monotonic() < deadline, 'the job wrote no files in 120 s'
      time.sleep(0.05)
  finally:
    os.killpg(job.pid, signal.SIGKILL)  # the job and its workers
    job.wait()
  survived = _files(directory)
  assert 3 <= len(survived) <= 8

  reference = ProposalStore(str(tmp_path / 'uninterrupted'))
  compute_proposals(_examples(NUM_KILLED), reference, FAST_TEST, num_workers=0)
  resumed = ProposalStore(directory)
  stats = compute_proposals(_examples(NUM_KILLED), resumed, FAST_TEST,
                            num_workers=0)
  assert stats.cached == len(survived)
  assert stats.computed == NUM_KILLED - len(survived)
  _assert_same_files(_files(directory), _files(reference.directory))
  assert len(_files(directory)) == NUM_KILLED
