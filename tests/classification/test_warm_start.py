"""Fine-tuning from a trained run (config.init_from, config.trainable_from):
the saved layers arrive exactly, fc8 is new and sized to the new classes,
frozen layers never move, and a run that does not fit is refused in one line
before any data is read."""

import os
import shutil

import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from sppnet_jax.classification import train, warm_start
from sppnet_jax.classification.model import create_model
from sppnet_jax.classification.state import initial_state
from sppnet_jax.core import parallel
from sppnet_jax.errors import CheckpointNotFoundError, ConfigError
from tests.classification.test_checkpoint_compat import SAVED
from tests.helpers import small_config

NEW_CLASSES = ('checkerboard', 'circle', 'ring')
CONV = tuple(f'conv{i}' for i in range(1, 6))


def _raw_params(step_folder) -> dict:
  """The parameters stored in a step folder, read by Orbax alone."""
  return ocp.PyTreeCheckpointer().restore(os.path.join(step_folder,
                                                       'state'))['params']


@pytest.fixture(scope='module')
def source_and_data(small_data, tmp_path_factory):
  """(the saved 10-class run as a workdir, an image folder of 3 of its
  classes): another data set with another class count."""
  root = tmp_path_factory.mktemp('warm_start')
  shutil.copytree(SAVED, root / 'source' / 'checkpoints')
  for split in ('train', 'val'):
    os.makedirs(root / 'data' / split)
    for name in NEW_CLASSES:
      os.symlink(os.path.join(small_data, split, name), root / 'data' / split / name)
  return str(root / 'source'), str(root / 'data')


def _config(data, source, **overrides):
  return small_config(data, dataset='imagefolder', num_classes=-1,
                      init_from=source, **overrides)


def test_the_start_is_the_saved_network_with_a_fresh_fc8(source_and_data):
  source, data = source_and_data
  config = _config(data, source)
  config.num_classes = len(NEW_CLASSES)
  fresh, _ = initial_state(config, create_model(config),
                           optax.constant_schedule(0.0), parallel.create_mesh())
  fresh_fc8 = {k: np.asarray(v) for k, v in fresh.params['fc8'].items()}
  saved = warm_start.source_config(config, '/nonexistent-workdir')
  started = warm_start.start_from(saved, fresh)
  want = _raw_params(os.path.join(SAVED, '5'))
  for layer in CONV + ('fc6', 'fc7'):
    for name in ('kernel', 'bias'):
      np.testing.assert_array_equal(np.asarray(started.params[layer][name]),
                                    want[layer][name], err_msg=layer)
  assert started.params['fc8']['kernel'].shape == (16, 3)
  for name in ('kernel', 'bias'):
    np.testing.assert_array_equal(np.asarray(started.params['fc8'][name]),
                                  fresh_fc8[name])


def test_frozen_convolutions_stay_saved_while_the_head_learns(source_and_data,
                                                             tmp_path):
  source, data = source_and_data
  workdir = str(tmp_path / 'run')
  metrics = train.train_and_evaluate(
      _config(data, source, trainable_from='fc6', num_epochs=2), workdir)
  assert metrics['num_examples'] == 9  # 3 classes x 3 validation images
  want = _raw_params(os.path.join(SAVED, '5'))
  got = _raw_params(os.path.join(workdir, 'checkpoints', '2'))
  for layer in CONV:
    for name in ('kernel', 'bias'):
      np.testing.assert_array_equal(got[layer][name], want[layer][name],
                                    err_msg=layer)
  for layer in ('fc6', 'fc7'):
    assert not np.array_equal(got[layer]['kernel'], want[layer]['kernel']), layer
  assert got['fc8']['kernel'].shape == (16, 3)
  # Resuming reads its own checkpoint, not init_from (gone by now).
  shutil.rmtree(os.path.join(source, 'checkpoints'), ignore_errors=False)
  try:
    train.train_and_evaluate(
        _config(data, source, trainable_from='fc6', num_epochs=3,
                allow_config_change=True), workdir)
  finally:
    shutil.copytree(SAVED, os.path.join(source, 'checkpoints'))
  got = _raw_params(os.path.join(workdir, 'checkpoints', '3'))
  for layer in CONV:
    np.testing.assert_array_equal(got[layer]['kernel'], want[layer]['kernel'])


@pytest.mark.parametrize('overrides, message', [
    (dict(architecture='convnet5', trainable_from='fc6'),
     "architecture 'zf5' here 'convnet5'"),
    (dict(spp_levels=(4, 2, 1)), 'spp_levels [6, 3, 2, 1] here [4, 2, 1]'),
    (dict(fc_dim=32), 'fc_dim 16 here 32'),
])
def test_a_saved_network_that_does_not_fit_is_refused_before_the_data(
    source_and_data, tmp_path, overrides, message):
  source, _ = source_and_data
  config = _config(str(tmp_path / 'no-data-here'), source, **overrides)
  with pytest.raises(ConfigError) as error:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert '\n' not in str(error.value)
  assert str(error.value).startswith(f'--config.init_from={source} does not fit '
                                     'this run (saved ')
  assert message in str(error.value)
  assert not os.path.exists(tmp_path / 'run')


def test_a_missing_run_is_one_line(tmp_path):
  config = _config(str(tmp_path), str(tmp_path / 'nothing'))
  with pytest.raises(CheckpointNotFoundError) as error:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert '\n' not in str(error.value) and 'nothing' in str(error.value)
