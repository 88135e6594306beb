"""--mode=transfer end to end on small data: the multi-label protocol on the
embedded detection set (cached, resumed), the multi-class one on image
folders, and the command line's refusals."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from sppnet_jax.transfer import config as config_lib
from sppnet_jax.transfer import main as transfer_main
from sppnet_jax.errors import ConfigError
from tests.helpers import run_main


def _config(backbone, **fields):
  config = config_lib.base_config()
  config.backbone = backbone
  config.size = 96
  config.full_image_step = 16
  config.batch_pixels = 8 * 96 * 96
  config.svm.c_grid = (0.1, 10.0)
  config.layer = 'fc7'
  for name, value in fields.items():
    node = config
    *parents, last = name.split('.')
    for parent in parents:
      node = node[parent]
    node[last] = value
  return config


@pytest.fixture(scope='module')
def voc_like(tmp_path_factory):
  from sppnet_jax.detection.data import embedded  # pylint: disable=g-import-not-at-top
  data = str(tmp_path_factory.mktemp('transfer') / 'data')
  embedded.ensure_embedded_detection_dataset(
      data, num_train=40, num_val=1, num_test=12, num_workers=0)
  with open(os.path.join(data, 'train', 'images', '000003.jpg'), 'wb') as f:
    f.write(b'not a jpeg')
  return data


def test_multilabel_run_and_its_cache(detection_setup, voc_like, tmp_path,
                                      capsys):
  backbone = detection_setup[1]
  config = _config(backbone, data_dir=voc_like)
  record = transfer_main.run(config, str(tmp_path))
  printed = capsys.readouterr().out
  assert 'mAP' in printed and 'skipped_images 1' in printed
  assert record['train_images'] == 39 and record['test_images'] == 12
  assert record['skipped_images'] == 1
  names = ('circle', 'square', 'triangle', 'star', 'cross', 'ring',
           'checkerboard', 'stripes')
  assert tuple(record['ap']) == names
  scored = [ap for ap in record['ap'].values() if ap is not None]
  assert record['map'] == pytest.approx(np.mean(scored))
  assert set(record['c'].values()) <= {0.1, 10.0}
  with open(tmp_path / 'transfer' / 'results.json') as f:
    assert json.load(f)['map'] == record['map']
  assert any(n.startswith('events') for n in
             os.listdir(tmp_path / 'transfer'))
  # The second run reads the cached features and scores the same.
  again = transfer_main.run(config, str(tmp_path))
  assert again['ap'] == record['ap']


def test_multiclass_folder_run(detection_setup, tmp_path):
  rng = np.random.default_rng(0)
  root = tmp_path / 'folders'
  colours = {'blue': (20, 40, 220), 'green': (30, 200, 40),
             'red': (220, 30, 30)}
  for name, colour in colours.items():
    (root / name).mkdir(parents=True)
    for i in range(12):
      pixels = np.clip(rng.normal(colour, 40, (80, 100, 3)), 0, 255)
      Image.fromarray(pixels.astype(np.uint8)).save(root / name / f'{i}.png')
  (root / 'red' / 'broken.jpg').write_bytes(b'not a jpeg')
  config = _config(detection_setup[1], dataset='folder', data_dir=str(root),
                   **{'splits.num_splits': 2, 'splits.train_per_class': 5,
                      'splits.test_per_class': 5, 'svm.folds': 2})
  record = transfer_main.run(config, str(tmp_path / 'run'))
  assert record['images'] == 36 and record['skipped_images'] == 1
  assert len(record['split_accuracies']) == 2
  assert record['accuracy'] == pytest.approx(
      np.mean(record['split_accuracies']))
  assert 0.0 <= record['accuracy'] <= 1.0


@pytest.mark.parametrize('fields,message', [
    ({'layer': 'fc8'}, "config.layer='fc8' is not one of"),
    ({'dataset': 'folder'}, 'needs --config.data_dir'),
    ({'svm.c_grid': (0.0,)}, 'must be positive numbers'),
    ({'test_split': 'train'}, 'must be two different splits'),
])
def test_config_refusals(fields, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.validate_config(_config('runs/x', **fields))


def test_command_line_modes(tmp_path):
  wrong_mode = run_main(f'--workdir={tmp_path}', '--mode=train',
                        recipe='configs/transfer/tiny_voc.py')
  assert wrong_mode.returncode == 2
  assert wrong_mode.stderr.strip().splitlines()[-1] == (
      'error: a transfer recipe (configs/transfer/*.py) runs with '
      '--mode=transfer, and only it does.')
  wrong_recipe = run_main(f'--workdir={tmp_path}', '--mode=transfer',
                          recipe='configs/classification/tiny.py')
  assert wrong_recipe.returncode == 2


def test_recipes_are_valid_once_given_their_paths():
  import runpy  # pylint: disable=g-import-not-at-top
  from tests.helpers import ROOT  # pylint: disable=g-import-not-at-top
  for name in ('tiny_voc', 'voc07', 'caltech101'):
    config = runpy.run_path(
        os.path.join(ROOT, 'configs', 'transfer', f'{name}.py'))['get_config']()
    if name != 'tiny_voc':
      with pytest.raises(ConfigError):  # no backbone / data_dir yet
        config_lib.validate_config(config)
      config.backbone = 'runs/imagenet'
      config.data_dir = config.data_dir or '/data/x'
    config_lib.validate_config(config)
