"""--mode=proposals on the embedded set: every readable image gets its file,
unreadable ones are counted, a second run computes nothing, two processes
write the same files as one, user-supplied proposals are checked."""

import os
import shutil
import socket
import subprocess

import numpy as np
import pytest

from sppnet_jax.detection import embedded_data, proposals
from tests.helpers import ROOT, main_command, _env

RECIPE = 'configs/detection/tiny.py'
CORRUPT = 'images/000002.jpg'


@pytest.fixture(scope='module')
def detection_data(tmp_path_factory):
  """8 train images (one of them garbage), 2 val images and 3 test images."""
  root = str(tmp_path_factory.mktemp('detection') / 'data')
  embedded_data.ensure_embedded_detection_dataset(root, num_train=8, num_val=2,
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
  store = proposals.ProposalStore(train)
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
