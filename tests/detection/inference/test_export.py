"""--mode=export on the tiny trained detector (tests/conftest.py): the
exported artefacts, run by the jax-only loader (inference/exported.py),
give `sppnet_jax.load_detector(...).detect`'s detections on the same images
and proposals (labels equal, boxes to 1e-4, scores to float rounding),
padded into a bucket or not; the manifest, the bucket rule and the
one-line errors; the README's snippet."""

import contextlib
import dataclasses
import io
import os
import re
import subprocess

import numpy as np
import pytest

import sppnet_jax
from sppnet_jax.core import projection
from sppnet_jax.core.data import image_files, image_ops
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.config import base_config, parse_sizes, validate_config
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.inference import export, exported
from sppnet_jax.detection.proposals.selective_search import selective_search
from sppnet_jax.errors import ConfigError
from tests.helpers import ROOT, run_main

RECIPE = 'tests/detection/small_recipe.py'
MIN_SCORE = -0.9999  # the tiny detector's SVM margins are near -1


@pytest.fixture(scope='module')
def export_run(detection_setup, trained_detector, tmp_path_factory):
  """(workdir, test images, stdout) of --mode=export on a copy of the
  trained detector, one bucket per test image's size."""
  data, backbone = detection_setup
  workdir = str(tmp_path_factory.mktemp('export') / 'run')
  subprocess.run(['cp', '-r', trained_detector[0], workdir], check=True)
  folder = os.path.join(data, 'test', 'images')
  images = [image_files.image_of(os.path.join(folder, name))
            for name in sorted(os.listdir(folder))]
  sizes = ','.join(f'{i.shape[0]}x{i.shape[1]}' for i in images)
  result = run_main('--mode=export', f'--workdir={workdir}',
                    f'--config.data_dir={data}',
                    f'--config.detection.backbone={backbone}',
                    f'--config.export.image_sizes={sizes}', recipe=RECIPE)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, images, result.stdout


def _proposals(detector, image):
  return box_lib.to_xyxy(selective_search(image, detector.proposal_settings))


def test_the_exported_detector_equals_detect(export_run):
  workdir, images, _ = export_run
  detector = sppnet_jax.load_detector(workdir)
  loaded = exported.load(os.path.join(workdir, 'export'))
  first = images[0]
  crop = first[:first.shape[0] - 2, :first.shape[1] - 3]  # padded in a bucket
  assert exported.bucket_for(loaded.manifest, *crop.shape[:2])['height'] == (
      first.shape[0])
  found, worst = 0, 0.0
  for image in images + [crop]:
    proposals = _proposals(detector, image)[:60]
    for threshold in (MIN_SCORE, None):
      want = detector.detect(image, proposals, score_threshold=threshold)
      got = loaded.detect(image, proposals, score_threshold=threshold)
      np.testing.assert_array_equal(got['labels'], want['labels'])
      assert got['names'] == want['names']
      np.testing.assert_allclose(got['boxes'], want['boxes'], atol=1e-4,
                                 rtol=0)
      np.testing.assert_allclose(got['scores'], want['scores'], rtol=1e-5,
                                 atol=1e-6)
      assert got['boxes'].dtype == np.float32 and got['labels'].dtype == np.int64
      if len(want['labels']):
        worst = max(worst, float(np.abs(got['boxes'] - want['boxes']).max()))
      found += len(want['labels']) if threshold == MIN_SCORE else 0
  assert found >= 10
  print(f'largest box difference {worst:.2e} pixels')


def test_manifest_buckets_and_one_line_errors(export_run):
  workdir, images, stdout = export_run
  assert stdout.startswith('exported the detector for 4 image sizes')
  loaded = exported.load(os.path.join(workdir, 'export'))
  manifest = loaded.manifest
  detector = sppnet_jax.load_detector(workdir)
  assert tuple(manifest['class_names']) == detector.class_names
  assert manifest['platforms'] == ['cpu', 'cuda']
  assert manifest['max_proposals'] == 60 and manifest['max_detections'] == 100
  assert [(b['height'], b['width']) for b in manifest['buckets']] == [
      i.shape[:2] for i in images]
  bucket = manifest['buckets'][0]
  assert loaded.artefact(bucket).platforms == ('cpu', 'cuda')
  rng = np.random.default_rng(0)
  for height, width in rng.integers(1, 1500, (300, 2)):
    for scale, step in ((128, 16), (688, 16), (600, 32)):
      assert exported.resized_size(int(height), int(width), scale, step) == (
          image_ops.full_image_size(int(height), int(width), scale, step))
  image = images[0]
  twice = np.concatenate([np.concatenate([image, image], 1)] * 2)
  with pytest.raises(ValueError, match='^no export bucket takes a '
                     f'{twice.shape[0]}x{twice.shape[1]} image [^\n]*$'):
    loaded.detect(twice, [[0, 0, 10, 10]])
  with pytest.raises(ValueError, match='^61 proposals, the export takes at '
                     'most 60'):
    loaded.detect(image, np.tile([[0, 0, 10, 10]], (61, 1)))
  with pytest.raises(ValueError, match='empty inside the image'):
    loaded.detect(image, [[5, 5, 5, 9]])
  with pytest.raises(FileNotFoundError, match='no export.json in'):
    exported.load(workdir)


def test_the_readmes_export_snippet_runs(export_run, detection_setup):
  """The ```python block of the README's "Exporting the detector", run as
  written with its quoted paths replaced (each must occur)."""
  workdir, _, _ = export_run
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    text = f.read()
  start = text.index('\n### Exporting the detector\n')
  section = text[start:text.index('\n## ', start)]
  (script,) = re.findall(r'```python\n(.*?)```', section, re.S)
  street = os.path.join(detection_setup[0], 'test', 'images', '000001.jpg')
  for name, path in (('runs/detection/export', os.path.join(workdir, 'export')),
                     ('street.jpg', street)):
    assert f"'{name}'" in script, name
    script = script.replace(f"'{name}'", repr(path))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(script, 'README.md (Exporting the detector)', 'exec'), {})  # pylint: disable=exec-used
  assert "'" in out.getvalue().splitlines()[-1]  # the class name printed


def test_export_sizes_are_checked_with_the_config():
  config = base_config()
  assert parse_sizes(config.export.image_sizes)[:2] == [(375, 500), (500, 375)]
  assert parse_sizes(' 12x34 ,5x6') == [(12, 34), (5, 6)]
  for bad in ('375*500', '0x5', '12x', 'axb,1x1'):
    config.export.image_sizes = bad
    with pytest.raises(ConfigError, match='^config.export.image_sizes=.*'
                       'HEIGHTxWIDTH[^\n]*$'):
      validate_config(config)


def test_a_two_scale_export_equals_detect(export_run, tmp_path):
  """The trained head on conv5 at two scales (boxes split between them by
  the scale rule), exported in this process: still detect's detections."""
  workdir, images, _ = export_run
  live = sppnet_jax.load_detector(workdir)
  scales = (96, 160)
  conv5 = MultiScaleConv5(live.conv5.model, live.conv5.params, scales,
                          live.conv5.step)
  pooling = dataclasses.replace(live.detector.pooling, scales=scales)
  live = dataclasses.replace(
      live, conv5=conv5,
      detector=dataclasses.replace(live.detector, pooling=pooling))
  image = images[3]
  export.export_detector(live, export.buckets_of([image.shape[:2]], conv5),
                         60, str(tmp_path), platforms=('cpu',))
  proposals = _proposals(live, image)[:60]
  choice = projection.choose_scales(box_lib.from_xyxy(proposals),
                                    *image.shape[:2], scales, 'paper',
                                    pooling.input_size, pooling.architecture)
  assert len(set(choice.tolist())) == 2
  want = live.detect(image, proposals, score_threshold=MIN_SCORE)
  got = exported.load(str(tmp_path)).detect(image, proposals,
                                            score_threshold=MIN_SCORE)
  assert len(want['labels']) >= 10
  np.testing.assert_array_equal(got['labels'], want['labels'])
  np.testing.assert_allclose(got['boxes'], want['boxes'], atol=1e-4, rtol=0)
  np.testing.assert_allclose(got['scores'], want['scores'], rtol=1e-5,
                             atol=1e-6)
