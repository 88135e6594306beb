"""A checkpoint written before the package layout changed (and before ZF-5 was
split into stages) restores unchanged and scores what it scored then."""

import os
import shutil

import pytest

from sppnet_jax.classification import eval_mode
from sppnet_jax.classification.restore import restore
from tests.helpers import small_config

# Step 5 of `small_config(small_data, num_epochs=1)` trained by commit bde846c
# (the flat sppnet_jax/ package); that code then scored it in eval mode at:
SAVED = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data',
                     'zf5_before_layout')
LOSS_THEN, TOP1_THEN, TOP5_THEN = 2.290865182876587, 4 / 30, 19 / 30


def test_checkpoint_of_the_flat_layout_restores_and_scores_as_before(small_data,
                                                                     tmp_path):
  shutil.copytree(SAVED, tmp_path / 'checkpoints')
  config = small_config(small_data, num_epochs=1)
  restored = restore(config, str(tmp_path), with_data=False)
  assert restored.step == 5 and restored.class_names[:2] == ('checkerboard',
                                                              'circle')
  metrics = eval_mode.evaluate_checkpoint(config, str(tmp_path))
  assert metrics['step'] == 5 and metrics['num_examples'] == 30
  assert metrics['top1'] == pytest.approx(TOP1_THEN, abs=1e-7)
  assert metrics['top5'] == pytest.approx(TOP5_THEN, abs=1e-7)
  assert metrics['loss'] == pytest.approx(LOSS_THEN, rel=1e-6)


def test_a_run_saved_before_config_architecture_resumes(small_data, tmp_path):
  """The record of that run has no `architecture` (it was ZF-5's only): the
  same command resumes it (at its end: it scores the final state) instead of
  calling the field a change."""
  from sppnet_jax.classification import train  # pylint: disable=g-import-not-at-top
  shutil.copytree(SAVED, tmp_path / 'checkpoints')
  metrics = train.train_and_evaluate(small_config(small_data, num_epochs=1),
                                     str(tmp_path))
  assert metrics['top1'] == pytest.approx(TOP1_THEN, abs=1e-7)
  assert metrics['loss'] == pytest.approx(LOSS_THEN, rel=1e-6)
