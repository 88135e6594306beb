"""The detector's backbone: a classification SPP-net checkpoint restored with
the config saved in it; ZFNets and other pyramids refused in one line."""

import os
import shutil

import jax
import numpy as np
import optax
import pytest

from sppnet_jax.classification.model import create_model
from sppnet_jax.classification.restore import restore
from sppnet_jax.classification.state import initial_state
from sppnet_jax.core import checkpoints, parallel
from sppnet_jax.detection import backbone
from sppnet_jax.errors import CheckpointError, CheckpointNotFoundError
from tests.classification.test_checkpoint_compat import SAVED
from tests.helpers import small_config


@pytest.fixture
def workdir(tmp_path):
  shutil.copytree(SAVED, tmp_path / 'run' / 'checkpoints')
  return str(tmp_path / 'run')


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_restores_the_checkpoint_with_its_own_config(workdir, small_data):
  loaded = backbone.load_backbone(workdir)
  # The reference: the classification restore, with the config the test
  # knows the checkpoint was trained with (SAVED's comment), not the saved one.
  reference = restore(small_config(small_data, num_epochs=1), workdir,
                      with_data=False)
  assert loaded.step == 5 and reference.step == 5
  assert loaded.config.width_multiplier == 0.1 and loaded.config.fc_dim == 16
  assert loaded.class_names == reference.class_names
  assert jax.tree.structure(loaded.params) == jax.tree.structure(
      jax.tree.map(np.asarray, reference.params))
  for got, want in zip(_leaves(loaded.params), _leaves(reference.params)):
    np.testing.assert_array_equal(got, want)
  by_step = backbone.load_backbone(os.path.join(workdir, 'checkpoints', '5'))
  for got, want in zip(_leaves(by_step.params), _leaves(loaded.params)):
    np.testing.assert_array_equal(got, want)


def test_detection_params_add_a_fresh_fc8(workdir):
  loaded = backbone.load_backbone(workdir)
  params = backbone.detection_params(loaded, 20, jax.random.key(0))
  for name in loaded.params:
    if name != 'fc8':
      for got, want in zip(_leaves(params[name]), _leaves(loaded.params[name])):
        np.testing.assert_array_equal(got, want)
  assert params['fc8']['kernel'].shape == (16, 21)
  np.testing.assert_array_equal(params['fc8']['bias'], np.zeros(21))
  assert 0.006 < params['fc8']['kernel'].std() < 0.014  # N(0, 0.01), 336 draws


def test_zfnets_and_nothing_are_one_line_errors(small_data, tmp_path):
  zfnet = str(tmp_path / 'zfnet')
  config = small_config(small_data, model='zfnet', train_sizes=(64,),
                        num_classes=2)
  state, _ = initial_state(config, create_model(config),
                           optax.constant_schedule(0.0), parallel.create_mesh())
  store = checkpoints.Checkpoints(zfnet, config, ('a', 'b'))
  store.save_latest(1, state, force=True)
  store.wait()
  store.close()
  with pytest.raises(CheckpointError) as e:
    backbone.load_backbone(zfnet)
  assert str(e.value).startswith(
      f'the backbone at {zfnet}/checkpoints/1 is a zfnet: detection pools')
  with pytest.raises(CheckpointNotFoundError, match='no checkpoint in '):
    backbone.load_backbone(str(tmp_path / 'nowhere'))
