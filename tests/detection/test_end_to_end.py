"""End-to-end detection training through main.py (tests/detection/
small_end_to_end_recipe.py on the shared tiny set and narrow backbone):
train, then --mode=eval gives the same score from the saved best checkpoint
and --mode=detect draws boxes; SIGTERM and kill -9 resume to the same
weights; 8 devices, and 2 processes x 2 devices, train the weights of 1;
the config's checks; and the
test-time box decoding of the detector's own deltas against hand-computed
boxes."""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from configs.detection import tiny_end_to_end
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.config import validate_config
from sppnet_jax.detection.features.conv5 import ScaledMap
from sppnet_jax.detection.features.pooling import PoolingSettings
from sppnet_jax.detection.inference.box_head import HeadBoxRegressor
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.errors import ConfigError
from tests.detection.training.test_end_to_end_model import (K, _network,
                                                             _params)
from tests.detection.test_pipeline import _finetuned, _leaves
from tests.helpers import ROOT, _env, main_command, run_main

RECIPE = 'tests/detection/small_end_to_end_recipe.py'


@pytest.fixture(scope='module')
def trained_end_to_end(detection_setup, tmp_path_factory):
  data, backbone = detection_setup
  workdir = str(tmp_path_factory.mktemp('end_to_end') / 'run')
  args = (f'--workdir={workdir}', f'--config.data_dir={data}',
          f'--config.detection.backbone={backbone}')
  result = run_main(*args, recipe=RECIPE, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, args, result


def test_train_then_eval_and_detect(trained_end_to_end, detection_setup):
  workdir, args, result = trained_end_to_end
  summary = result.stdout.strip().splitlines()[-1]
  assert summary.startswith('test VOC07 mAP ') and 'on 4 images' in summary
  assert 'End-to-end training (conv3 learn; frozen: conv1, conv2)' in (
      result.stderr)
  assert 'validation mAP' in result.stderr
  for folder in ('checkpoints', 'best'):
    assert os.listdir(os.path.join(workdir, 'end_to_end', folder))
  assert not os.path.exists(os.path.join(workdir, 'features'))  # no cache
  again = run_main(*args, '--mode=eval', recipe=RECIPE, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.strip().splitlines()[-1] == summary
  data, _ = detection_setup
  image = os.path.join(data, 'test', 'images', '000001.jpg')
  found = run_main(*args, '--mode=detect', image,
                   '--config.test.min_score=0.0', recipe=RECIPE, timeout=600)
  assert found.returncode == 0, found.stderr[-3000:]
  line = json.loads(found.stdout.strip().splitlines()[-1])
  assert line['file'].endswith('000001.jpg') and line['detections']
  assert len(line['detections']) <= 100


@pytest.mark.parametrize('how', ['sigterm', 'kill'])
def test_a_stopped_run_resumes_to_the_same_weights(trained_end_to_end,
                                                   tmp_path, how):
  """Stopped after its step-2 checkpoint (SIGTERM: saves and exits 143;
  kill -9), the same command ends with the uninterrupted run's weights and
  score, bit for bit."""
  reference, args, result = trained_end_to_end
  workdir = str(tmp_path / 'run')
  args = (f'--workdir={workdir}',) + args[1:]
  process = subprocess.Popen(main_command(*args, recipe=RECIPE), cwd=ROOT,
                             env=_env(None), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  marker = os.path.join(workdir, 'end_to_end', 'checkpoints', '2')
  while not os.path.isdir(marker):
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM if how == 'sigterm' else signal.SIGKILL)
  process.communicate(timeout=600)
  if how == 'sigterm':
    assert process.returncode == 143
  again = run_main(*args, recipe=RECIPE, timeout=900)
  assert again.returncode == 0, again.stderr[-3000:]
  step, params = _finetuned(workdir, 'end_to_end')
  want_step, want = _finetuned(reference, 'end_to_end')
  assert step == want_step == 6
  for got, expected in zip(_leaves(params), _leaves(want)):
    np.testing.assert_array_equal(got, expected)
  assert (again.stdout.strip().splitlines()[-1]
          == result.stdout.strip().splitlines()[-1])


def test_eight_devices_train_the_weights_of_one(detection_setup, tmp_path):
  """8 images a step, on 1 device and on 8 (each image and its regions on
  its own device, the state replicated): the same weights to 1e-5."""
  data, backbone = detection_setup
  runs = []
  for devices in (1, 8):
    workdir = str(tmp_path / f'devices{devices}')
    result = run_main(f'--workdir={workdir}', f'--config.data_dir={data}',
                      f'--config.detection.backbone={backbone}',
                      '--config.end_to_end.images_per_batch=8',
                      '--config.end_to_end.num_steps=3',
                      '--config.end_to_end.val_split=', devices=devices,
                      recipe=RECIPE, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    runs.append(_finetuned(workdir, 'end_to_end'))
  (step, one), (step8, eight) = runs
  assert step == step8 == 3
  for got, expected in zip(_leaves(eight), _leaves(one)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_two_processes_of_two_devices_train_the_weights_of_one(
    detection_setup, tmp_path):
  """4 images a step on 1 device, and on 2 processes x 2 devices (each
  process assembling its 2 images): the same weights to 1e-5, the same
  score printed by both processes."""
  data, backbone = detection_setup
  common = (f'--config.data_dir={data}',
            f'--config.detection.backbone={backbone}',
            '--config.end_to_end.images_per_batch=4',
            '--config.end_to_end.num_steps=3', '--config.end_to_end.val_split=')
  one = str(tmp_path / 'one')
  result = run_main(f'--workdir={one}', *common, recipe=RECIPE, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  workdir = str(tmp_path / 'two')
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  processes = [subprocess.Popen(
      main_command(f'--workdir={workdir}', *common,
                   f'--coordinator_address=127.0.0.1:{port}',
                   '--num_processes=2', f'--process_id={p}', recipe=RECIPE),
      cwd=ROOT, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for p in range(2)]
  outputs = [p.communicate(timeout=900) for p in processes]
  for process, (_, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-3000:]
  assert outputs[0][0].splitlines()[-1] == outputs[1][0].splitlines()[-1]
  (step, want), (step2, got) = (_finetuned(one, 'end_to_end'),
                                _finetuned(workdir, 'end_to_end'))
  assert step == step2 == 3
  for a, b in zip(_leaves(got), _leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_voc07_recipe_trains_on_the_genuine_builder(detection_setup,
                                                        tmp_path):
  """configs/detection/voc07_end_to_end.py, shrunk to 3 steps, on TFDS
  voc/2007 prepared by the genuine builder from fake archives."""
  from tests.detection import voc_fixture  # pylint: disable=g-import-not-at-top
  manual, data = str(tmp_path / 'manual'), str(tmp_path / 'tfds')
  voc_fixture.write_voc_archives(manual)
  voc_fixture.prepare_voc2007(data, manual)
  workdir = str(tmp_path / 'run')
  result = run_main(
      f'--workdir={workdir}', f'--config.data_dir={data}',
      f'--config.manual_dir={manual}',
      f'--config.detection.backbone={detection_setup[1]}',
      '--config.detection.scales=(128,)', '--config.proposals.num_workers=0',
      '--config.proposals.max_boxes=60', '--config.proposals.min_side=4',
      '--config.end_to_end.num_steps=3',
      '--config.end_to_end.regions_per_image=16',
      '--config.end_to_end.checkpoint_every_steps=1',
      '--config.test.batch_boxes=64',
      recipe='configs/detection/voc07_end_to_end.py', timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert [line.split()[0] for line in lines[1:21]] == list(voc_fixture.CLASSES)
  assert lines[-1].startswith('test VOC07 mAP ')
  assert _finetuned(workdir, 'end_to_end')[0] == 3


def test_config_checks():
  config = tiny_end_to_end.get_config()
  validate_config(config)
  for field, value, message in (
      ('train_layers', 'conv4', 'train_layers'),
      ('box_target_stds', (0.1, 0.1, 0.2), 'box_target_stds'),
      ('images_per_batch', 0, 'images_per_batch'),
      ('val_split', 'test', 'test split')):
    bad = tiny_end_to_end.get_config()
    bad.end_to_end[field] = value
    with pytest.raises(ConfigError, match=message):
      validate_config(bad)
  bad = tiny_end_to_end.get_config()
  bad.detection.training = 'joint'
  with pytest.raises(ConfigError, match='detection.training'):
    validate_config(bad)
  bad = tiny_end_to_end.get_config()
  bad.detection.scales = (240, 344)
  with pytest.raises(ConfigError, match='give the training scales'):
    validate_config(bad)


def test_own_deltas_move_the_kept_boxes_by_hand():
  """A detector whose bbox_pred is zero but for its bias: every box of
  class c moves by the bias's deltas times the stds, decoded by hand."""
  model = _network()
  params = _params(model)
  stds = (0.1, 0.1, 0.2, 0.2)
  wanted = np.array([[0.5, -0.25, 0.1, -0.2], [0.0, 0.3, -0.1, 0.05],
                     [0.2, 0.2, 0.2, 0.2]])  # deltas per class
  params['bbox_pred']['kernel'] = np.zeros_like(params['bbox_pred']['kernel'])
  params['bbox_pred']['bias'] = (wanted / np.asarray(stds)).reshape(-1).astype(
      np.float32)
  head = {k: params[k] for k in ('fc6', 'fc7', 'fc8')}
  regressor = HeadBoxRegressor(model, head, params['bbox_pred']['kernel'],
                               params['bbox_pred']['bias'], stds)
  pooling = PoolingSettings((96,), tuple(model.spp_levels), 'paper', 'paper',
                            96)
  detector = Detector(model, head, pooling, K, regressor=regressor,
                      nms_iou=0.3, max_per_image=100, pre_nms_per_class=300,
                      batch_boxes=64)
  image = np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3), np.uint8)
  conv5 = model.apply({'params': {k: v for k, v in params.items()
                                  if k != 'bbox_pred'}},
                      image.astype(np.float32), method='features')[0]
  proposals = np.array([[10, 10, 60, 50], [40, 30, 90, 90]], np.float32)
  found = detector.detect_from_maps([ScaledMap(conv5, 1.0, 1.0)], proposals,
                                    96, 96)
  assert len(found.boxes)
  for box, cls in zip(found.boxes, found.classes):
    source = [p for p in proposals
              if np.allclose(box_lib.clip_to_image(box_lib.decode_deltas(
                  p[None].astype(np.float64), wanted[cls][None]), 96, 96)[0],
                             box, atol=1e-4)]
    assert len(source) == 1, (box, cls)
  # Hand decoding of the first proposal for class 0: centre (35, 30), size
  # 50 x 40 -> centre (35 + 0.5 * 50, 30 - 0.25 * 40) = (60, 20), size
  # (50 e^0.1, 40 e^-0.2).
  h, w = 50 * np.exp(0.1), 40 * np.exp(-0.2)
  np.testing.assert_allclose(
      box_lib.decode_deltas(proposals[:1], wanted[:1])[0],
      [60 - h / 2, 20 - w / 2, 60 + h / 2, 20 + w / 2], rtol=1e-6)


def test_the_exported_end_to_end_detector_equals_detect(trained_end_to_end,
                                                        detection_setup):
  """--mode=export of an end-to-end workdir: its own box deltas run inside
  the artefact (`HeadBoxRegressor.traced`), and the loader gives detect()'s
  detections (labels equal, boxes to 1e-4)."""
  import sppnet_jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.data import image_files  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.inference import exported  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.proposals.selective_search import selective_search  # pylint: disable=g-import-not-at-top
  workdir, args, _ = trained_end_to_end
  data, _ = detection_setup
  folder = os.path.join(data, 'test', 'images')
  images = [image_files.image_of(os.path.join(folder, name))
            for name in sorted(os.listdir(folder))]
  sizes = ','.join(f'{i.shape[0]}x{i.shape[1]}' for i in images)
  result = run_main(*args, '--mode=export', f'--config.export.image_sizes={sizes}',
                    recipe=RECIPE, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  detector = sppnet_jax.load_detector(workdir)
  loaded = exported.load(os.path.join(workdir, 'export'))
  found = 0
  for image in images:
    proposals = box_lib.to_xyxy(selective_search(
        image, detector.proposal_settings))[:60]
    want = detector.detect(image, proposals, score_threshold=0.0)
    got = loaded.detect(image, proposals, score_threshold=0.0)
    np.testing.assert_array_equal(got['labels'], want['labels'])
    np.testing.assert_allclose(got['boxes'], want['boxes'], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got['scores'], want['scores'], rtol=1e-5,
                               atol=1e-6)
    found += len(want['labels'])
  assert found >= 10
