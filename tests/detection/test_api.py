"""`sppnet_jax.load_detector` on the tiny trained detector (tests/conftest.py):
`detect` against --mode=detect's JSON lines on the same images (both in
processes started the same way, so the same convolutions), file paths and
arrays of several sizes alike, given proposals, `draw`, and bad input or a
missing detector as one-line user errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sppnet_jax
from sppnet_jax.core.data import image_files
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.inference import drawing
from sppnet_jax.detection.proposals.selective_search import selective_search
from sppnet_jax.errors import CheckpointNotFoundError, DataError, UserError
from tests.helpers import ROOT, _env, run_main

RECIPE = 'tests/detection/small_recipe.py'
# Low enough that the tiny detector's SVMs (margins near -1) keep detections.
MIN_SCORE = -0.9999

# The API in a fresh process, started as main.py starts (the same XLA flags).
_SCRIPT = '''
import json, sys
from sppnet_jax import runtime
runtime.prefer_fast_cpu_convolutions()
import sppnet_jax
detector = sppnet_jax.load_detector(sys.argv[1])
for path in sys.argv[3:]:
  result = detector.detect(path, score_threshold=float(sys.argv[2]))
  print(json.dumps({k: v if k == 'names' else v.tolist()
                    for k, v in result.items()}))
'''


@pytest.fixture(scope='module')
def detector(trained_detector):
  return sppnet_jax.load_detector(trained_detector[0])


def _test_images(data):
  folder = os.path.join(data, 'test', 'images')
  return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


@pytest.mark.parametrize('min_score', [MIN_SCORE, None])
def test_detect_equals_the_command_lines_json(detection_setup, trained_detector,
                                              tmp_path, min_score):
  data, backbone = detection_setup
  workdir = str(tmp_path / 'run')  # a copy: detect writes its drawings there
  subprocess.run(['cp', '-r', trained_detector[0], workdir], check=True)
  images = _test_images(data)
  override = ([] if min_score is None
              else [f'--config.test.min_score={min_score}'])
  cli = run_main('--mode=detect', f'--workdir={workdir}',
                 f'--config.data_dir={data}',
                 f'--config.detection.backbone={backbone}', *override, *images,
                 recipe=RECIPE)
  assert cli.returncode == 0, cli.stderr[-3000:]
  lines = [json.loads(line) for line in cli.stdout.splitlines()]
  assert [line['file'] for line in lines] == images
  api = subprocess.run(
      [sys.executable, '-c', _SCRIPT, workdir,
       str(0.0 if min_score is None else min_score), *images],
      cwd=ROOT, env=_env(None), capture_output=True, text=True, timeout=600)
  assert api.returncode == 0, api.stderr[-3000:]
  results = [json.loads(line) for line in api.stdout.splitlines()]
  if min_score is not None:
    assert sum(len(r['labels']) for r in results) >= 10
  for line, result in zip(lines, results):
    assert line['detections'] == [
        {'class': name, 'score': round(score, 4),
         'box': [round(v, 1) for v in box]}
        for name, score, box in zip(result['names'], result['scores'],
                                    result['boxes'])]


def _iou_xyxy(a, b) -> float:
  width = min(a[2], b[2]) - max(a[0], b[0])
  height = min(a[3], b[3]) - max(a[1], b[1])
  inter = max(width, 0) * max(height, 0)
  area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
  return inter / (area(a) + area(b) - inter)


def test_arrays_paths_proposals_and_draw(detector, detection_setup):
  image_path = _test_images(detection_setup[0])[0]
  assert detector.class_names[0] == 'circle'
  from_path = detector.detect(image_path, score_threshold=MIN_SCORE)
  assert len(from_path['labels']) >= 2
  assert from_path['boxes'].dtype == np.float32
  assert from_path['labels'].dtype == np.int64
  assert from_path['names'] == [detector.class_names[k]
                                for k in from_path['labels']]
  image, _ = image_files.read_image(image_path)
  small = np.ascontiguousarray(image[:90, :130])
  batch = detector.detect_batch([image, small, image_path],
                                score_threshold=MIN_SCORE)
  for key in ('boxes', 'scores', 'labels'):
    np.testing.assert_array_equal(batch[0][key], from_path[key])
    np.testing.assert_array_equal(batch[2][key], from_path[key])
    np.testing.assert_array_equal(
        batch[1][key], detector.detect(small, score_threshold=MIN_SCORE)[key])
  # Proposals in (x0, y0, x1, y1): selective search's own, converted, give
  # the same detections.
  proposals = box_lib.to_xyxy(selective_search(image,
                                               detector.proposal_settings))
  given = detector.detect(image, proposals, score_threshold=MIN_SCORE)
  for key in ('boxes', 'scores', 'labels'):
    np.testing.assert_array_equal(given[key], from_path[key])
  # Long thin proposals, wide and tall: each detection is (near) one of them
  # in (x0, y0, x1, y1) (box regression moves it a little), by a brute-force
  # IoU in that order; read in another order they would barely overlap.
  thin = np.array([[5, 10, 200, 40], [20, 5, 50, 140], [100, 60, 210, 80],
                   [150, 0, 170, 120]], np.float32)
  found = detector.detect(image, thin, score_threshold=-np.inf)
  assert len(found['boxes']) >= 4
  for box in found['boxes']:
    assert max(_iou_xyxy(box, p) for p in thin) > 0.6, box
  drawn = sppnet_jax.draw(image_path, from_path)
  np.testing.assert_array_equal(drawn, drawing.draw_detections(
      image, box_lib.from_xyxy(from_path['boxes']), from_path['labels'],
      from_path['scores'], detector.class_names))


def test_bad_input_and_missing_detectors_are_one_line_user_errors(
    detector, detection_setup, tmp_path):
  data, backbone = detection_setup
  corrupt = os.path.join(data, 'train', 'images', '000002.jpg')
  with pytest.raises(DataError, match=f'^{corrupt}: not a readable image'):
    detector.detect(corrupt)
  with pytest.raises(DataError, match=f'^{corrupt}: not a readable image'):
    detector.detect_batch([_test_images(data)[0], corrupt])
  with pytest.raises(DataError, match=r'the image is a float64 array'):
    detector.detect(np.zeros((30, 40, 3)))
  with pytest.raises(DataError, match=r'proposals: boxes must be \(N, 4\)'):
    detector.detect(_test_images(data)[0], proposals=np.zeros((3, 3)))
  with pytest.raises(DataError, match=r'proposals: 2 box\(es\) empty inside '
                     r'the 213x145 image'):
    detector.detect(_test_images(data)[0], proposals=[
        [-50, -20, 100, 60], [500, 500, 600, 700], [10, 10, 10, 30]])
  for path in (str(tmp_path), backbone):  # nothing; a classification run
    with pytest.raises(CheckpointNotFoundError) as error:
      sppnet_jax.load_detector(path)
    assert isinstance(error.value, UserError)
    assert str(error.value).startswith(f'no trained detector in {path} ')
    assert '\n' not in str(error.value)
