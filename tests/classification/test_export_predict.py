"""Exported artefacts against the checkpoint, and predict on good and bad files."""

import json
import os

import jax
import numpy as np
import pytest

from sppnet_jax.classification import export, predict, train
from sppnet_jax.classification.restore import restore
from tests.helpers import run_main, small_config


@pytest.fixture(scope='module')
def trained(small_data, tmp_path_factory):
  data = small_data
  workdir = str(tmp_path_factory.mktemp('run'))
  config = small_config(data, num_epochs=1)
  train.train_and_evaluate(config, workdir)
  return data, workdir, config


def test_exported_probabilities_equal_the_checkpoints(trained, tmp_path):
  _, workdir, config = trained
  restored = restore(config, workdir, with_data=False)
  export.export_model(restored.model, restored.params, [64, 48, 40], str(tmp_path),
                      class_names=restored.class_names, config=config)
  manifest, artefacts = export.load_exported(str(tmp_path))
  assert manifest['class_names'] == list(restored.class_names)
  reference = jax.jit(export.inference_function(restored.model, restored.params))
  rng = np.random.default_rng(0)
  for size in (64, 48, 40):
    for batch in (1, 5):  # The batch dimension is symbolic.
      images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
      got = export.run_exported(artefacts[size], images)
      np.testing.assert_allclose(got, np.asarray(reference(images)), atol=1e-6)
      np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


def test_full_image_buckets():
  # 300x450 -> short side 256 -> 256x384; 500x333 -> 384.4x256 -> 384x256.
  assert predict.full_image_shape(300, 450, 256, 32) == (256, 384)
  assert predict.full_image_shape(500, 333, 256, 32) == (384, 256)
  assert predict.full_image_shape(10, 1000, 72, 32) == (64, 7200)


def test_predict_reports_a_corrupt_file_and_goes_on(trained, tmp_path):
  data, workdir, _ = trained
  good = [os.path.join(data, 'val', 'circle', name)
          for name in sorted(os.listdir(os.path.join(data, 'val', 'circle')))[:2]]
  bad = tmp_path / 'broken.jpg'
  bad.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
  result = run_main('--mode=predict', f'--workdir={workdir}',
                    f'--config.data_dir={data}', '--config.num_epochs=1',
                    f'--images={good[0]},{bad},{good[1]}', '--json')
  assert result.returncode == 1, result.stderr[-3000:]
  lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
  assert [line['file'] for line in lines] == [good[0], str(bad), good[1]]
  assert 'not a readable image' in lines[1]['error']
  for line in (lines[0], lines[2]):
    names = [name for name, _ in line['predictions']]
    assert len(names) == 5 and len(set(names)) == 5
    probabilities = [p for _, p in line['predictions']]
    assert probabilities == sorted(probabilities, reverse=True)


def test_predict_takes_files_and_folders_as_plain_arguments(trained, tmp_path):
  """As a shell glob gives them: `--mode=predict photos/*.jpg`; folders expand to
  their image files, and --images still works beside them. A file named both
  directly and through its folder is predicted once."""
  data, workdir, _ = trained
  folder = os.path.join(data, 'val', 'circle')
  files = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
  result = run_main('--mode=predict', f'--workdir={workdir}',
                    f'--config.data_dir={data}', '--config.num_epochs=1', '--json',
                    f'--images={files[0]}', files[1], files[2],
                    os.path.join(data, 'val', 'ring'), folder)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
  ring = os.path.join(data, 'val', 'ring')
  assert [line['file'] for line in lines] == files[:3] + [
      os.path.join(ring, name) for name in sorted(os.listdir(ring))] + files[3:]
  assert all(len(line['predictions']) == 5 for line in lines)
