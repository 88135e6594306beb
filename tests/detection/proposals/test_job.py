"""Filling proposal stores. compute_proposals: resumption against a job
killed with SIGKILL in a subprocess and an uninterrupted run, workers against
one process, settings records. --mode=proposals on the embedded set: every
readable image gets its file, unreadable ones are counted, a second run
computes nothing, two processes write the same files as one, user-supplied
proposals are checked."""

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from sppnet_jax.detection.data import embedded
from sppnet_jax.detection.proposals import job
from sppnet_jax.detection.proposals.job import compute_proposals
from sppnet_jax.detection.proposals.selective_search import (RCNN_FAST,
                                                             selective_search)
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.stage_files import file_name_of
from sppnet_jax.errors import ConfigError
from tests.detection.proposals.scene import scene as _scene
from tests.helpers import ROOT, main_command, _env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
RECIPE = 'configs/detection/tiny.py'
CORRUPT = 'images/000002.jpg'


@pytest.fixture(scope='module')
def detection_data(tmp_path_factory):
  """8 train images (one of them garbage), 2 val images and 3 test images."""
  root = str(tmp_path_factory.mktemp('detection') / 'data')
  embedded.ensure_embedded_detection_dataset(root, num_train=8, num_val=2,
                                                  num_test=3, num_workers=0)
  with open(os.path.join(root, 'train', CORRUPT), 'wb') as f:
    f.write(b'not a jpeg')
  return root


def _start(data_dir, workdir, *extra):
  return subprocess.Popen(
      main_command(f'--workdir={workdir}', '--mode=proposals',
                   f'--config.data_dir={data_dir}',
                   '--config.proposals.num_workers=0',
                   '--config.proposals.min_side=20',
                   '--config.finetune.val_split=', *extra, recipe=RECIPE),
      cwd=ROOT, env=_env(None), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def _run(data_dir, workdir, *extra):
  process = _start(data_dir, workdir, *extra)
  out, err = process.communicate(timeout=600)
  return process.returncode, out, err


def _files(directory):
  return {name: open(os.path.join(directory, name), 'rb').read()
          for name in sorted(os.listdir(directory)) if name.endswith('.npz')}


def test_every_readable_image_once_then_nothing_to_do(detection_data, tmp_path):
  workdir = str(tmp_path / 'run')
  code, out, err = _run(detection_data, workdir)
  assert code == 0, err
  lines = out.splitlines()
  assert lines[0].startswith('proposals of train: 7 images, 7 computed, 0 '
                             'already there, ')
  assert ', 1 unreadable images skipped, in ' in lines[0]
  assert lines[1].startswith('proposals of test: 3 images, 3 computed, 0 '
                             'already there, ')
  assert 'unreadable' not in lines[1]
  assert 'Skipped 1 unreadable train image(s): ' in err and CORRUPT in err
  train = os.path.join(workdir, 'proposals', 'train')
  assert set(_files(train)) == {f'{i}.npz' for i in (1, 3, 4, 5, 6, 7, 8)}
  assert set(_files(os.path.join(workdir, 'proposals', 'test'))) == {
      '1.npz', '2.npz', '3.npz'}
  store = ProposalStore(train)
  for image_id in ('1', '8'):
    boxes = store.load(image_id)
    assert boxes.shape[1] == 4 and len(boxes) > 10
    assert np.all(boxes[:, 2:] - boxes[:, :2] >= 20)  # the min side
  before = _files(train)
  code, out, _ = _run(detection_data, workdir)
  assert code == 0
  assert out.splitlines()[0].startswith(
      'proposals of train: 7 images, 0 computed, 7 already there, ')
  assert _files(train) == before


def test_two_processes_write_what_one_writes(detection_data, tmp_path):
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  assert _run(detection_data, one)[0] == 0
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  processes = [_start(detection_data, two, f'--coordinator_address=127.0.0.1:{port}',
                      '--num_processes=2', f'--process_id={p}')
               for p in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for process, (_, err) in zip(processes, outputs):
    assert process.returncode == 0, err
  # Each process did its half of each split: 4 + 4 train images (one of them
  # unreadable), 1 + 2 test images.
  lines = [[line for line in out.splitlines() if line.startswith('proposals')]
           for out, _ in outputs]
  train_counts = sorted(int(own[0].split(': ')[1].split()[0]) for own in lines)
  assert train_counts == [3, 4]
  assert lines[0][0].startswith('proposals of train (process 0 of 2): ')
  for split in ('train', 'test'):
    assert _files(os.path.join(two, 'proposals', split)) == _files(
        os.path.join(one, 'proposals', split))


def test_precomputed_proposals_are_checked(detection_data, tmp_path):
  computed = str(tmp_path / 'computed')
  assert _run(detection_data, computed)[0] == 0
  supplied = str(tmp_path / 'supplied')
  shutil.copytree(os.path.join(computed, 'proposals'), supplied)
  extra = ('--config.proposals.method=precomputed',
           f'--config.proposals.dir={supplied}')
  code, out, err = _run(detection_data, str(tmp_path / 'w1'), *extra)
  assert code == 0, err
  assert out.splitlines()[0].startswith(
      'proposals of train: 7 images, 0 computed, 7 already there, ')
  os.remove(os.path.join(supplied, 'test', '2.npz'))
  code, out, err = _run(detection_data, str(tmp_path / 'w2'), *extra)
  assert code == 2
  last = err.strip().splitlines()[-1]
  assert last.startswith("error: no proposals for image '2' in ")
  assert '--mode=proposals' in last
  assert os.path.join(supplied, 'test') in last


def test_mode_and_recipe_must_match(tmp_path):
  result = subprocess.run(
      main_command(f'--workdir={tmp_path}', '--mode=proposals'), cwd=ROOT,
      env=_env(None), capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --mode=proposals is not a classification mode: use a detection '
      'recipe (--config=configs/detection/...) or one of train, eval, export, '
      'predict.')
  result = subprocess.run(
      main_command(f'--workdir={tmp_path}', '--config.proposals.max_box=3',
                   recipe=RECIPE), cwd=ROOT, env=_env(None),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert 'sppnet_jax/detection/config.py' in result.stderr


# -----------------------------------------------------------------------------
# compute_proposals
# -----------------------------------------------------------------------------

FAST_TEST = dataclasses.replace(RCNN_FAST, min_side=8, max_boxes=50)


def _examples(count, first=0):
  for i in range(first, first + count):
    yield f'set/{i:03d}', _scene(100 + i)


def _stored_boxes(directory):
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
  assert stats.boxes == sum(
      len(b) for b in _stored_boxes(serial.directory).values())
  _assert_same_files(_stored_boxes(serial.directory),
                     _stored_boxes(parallel.directory))
  for image_id, image in _examples(6):
    np.testing.assert_array_equal(parallel.load(image_id),
                                  selective_search(image, FAST_TEST))
  again = compute_proposals(_examples(6), parallel, FAST_TEST, num_workers=2)
  assert (again.computed, again.cached) == (0, 6)
  assert sorted(os.listdir(parallel.directory)) == sorted(
      [job.SETTINGS_FILE] + [file_name_of(i) for i, _ in _examples(6)])


def test_other_settings_in_the_same_directory_are_refused(tmp_path):
  store = ProposalStore(str(tmp_path))
  compute_proposals(_examples(1), store, FAST_TEST, num_workers=0)
  with pytest.raises(ConfigError, match=r'proposals made with other settings '
                     r'\(max_boxes: 50 -> 20\)'):
    compute_proposals(_examples(2), store,
                      dataclasses.replace(FAST_TEST, max_boxes=20),
                      num_workers=0)
  with pytest.raises(ConfigError):
    compute_proposals(_examples(1), store, FAST_TEST, num_workers=-1)


_KILLED_JOB = """
import sys, time
from sppnet_jax.detection.proposals.job import compute_proposals
from sppnet_jax.detection.proposals.store import ProposalStore
from tests.detection.proposals.test_job import FAST_TEST, _examples

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
  survived = _stored_boxes(directory)
  assert 3 <= len(survived) <= 8

  reference = ProposalStore(str(tmp_path / 'uninterrupted'))
  compute_proposals(_examples(NUM_KILLED), reference, FAST_TEST, num_workers=0)
  resumed = ProposalStore(directory)
  stats = compute_proposals(_examples(NUM_KILLED), resumed, FAST_TEST,
                            num_workers=0)
  assert stats.cached == len(survived)
  assert stats.computed == NUM_KILLED - len(survived)
  _assert_same_files(_stored_boxes(directory), _stored_boxes(reference.directory))
  assert len(_stored_boxes(directory)) == NUM_KILLED
