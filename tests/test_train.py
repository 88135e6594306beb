"""The training loop end to end on a small generated image folder."""

import os

import jax
import numpy as np
import pytest

from sppnet_jax import compile_count, input_pipeline, parallel, train
from tests.helpers import small_config


def test_two_size_run_compiles_once_per_size_and_scores_every_example(
    small_data, tmp_path):
  # 80 train images / batch 16 = 5 steps per epoch; 3 epochs alternate 64, 48, 64.
  config = small_config(small_data, num_epochs=3)
  with compile_count.compilations() as compiled:
    metrics = train.train_and_evaluate(config, str(tmp_path))
  assert compiled.count('train_step') == 2, compiled
  assert compiled.count('eval_step') == 1, compiled
  # 30 validation images, batches of 16: the last batch is padded and masked.
  assert metrics['num_examples'] == 30
  assert 0.0 <= metrics['top1'] <= metrics['top5'] <= 1.0
  assert np.isfinite(metrics['loss'])
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['10', '15']
  assert os.listdir(tmp_path / 'best')


def test_rerun_resumes_and_eval_mode_scores_the_best(small_data, tmp_path):
  config = small_config(small_data, num_epochs=2, keep_best_checkpoints=1)
  first = train.train_and_evaluate(config, str(tmp_path))
  again = train.train_and_evaluate(config, str(tmp_path))  # Nothing left to train.
  assert again == first
  scored = train.evaluate_checkpoint(config, str(tmp_path))
  assert scored['num_examples'] == 30
  assert scored['step'] in (5, 10)


def test_checkpoint_of_another_model_is_a_clear_error(small_data, tmp_path):
  train.train_and_evaluate(small_config(small_data, num_epochs=1), str(tmp_path))
  other = small_config(small_data, num_epochs=2, spp_levels=(4, 2, 1))
  with pytest.raises(ValueError, match=r'spp_levels: checkpoint \[6, 3, 2, 1\]'):
    train.train_and_evaluate(other, str(tmp_path))
  zfnet = small_config(small_data, num_epochs=2, model='zfnet', train_sizes=(64,))
  with pytest.raises(ValueError, match="model: checkpoint 'sppnet', config 'zfnet'"):
    train.train_and_evaluate(zfnet, str(tmp_path))
  # Another class count (a model for another data set) against the same files.
  from sppnet_jax import checkpoints
  five = small_config(small_data, num_classes=5)
  store = checkpoints.Checkpoints(str(tmp_path), five)
  with pytest.raises(ValueError, match='num_classes: checkpoint 10, config 5'):
    store.restore(store.latest, store.latest_step(), abstract_state=None)
  store.close()


def test_config_errors_are_one_line(small_data):
  with pytest.raises(ValueError, match='num_classes=7 but'):
    train.setup(small_config(small_data, num_classes=7))
  with pytest.raises(ValueError, match='multiple of'):
    train.setup(small_config(small_data, batch_size=0))
  with pytest.raises(ValueError, match='at least 31'):
    train.setup(small_config(small_data, train_sizes=(24,)))


def test_per_step_size_schedule_compiles_once_per_size(small_data, tmp_path):
  config = small_config(small_data, num_epochs=1, size_schedule='step')
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert metrics['num_examples'] == 30


def test_bfloat16_activations_keep_float32_parameters(small_data):
  config = small_config(small_data, dtype='bfloat16')
  run = train.setup(config)
  assert run.model.dtype == jax.numpy.bfloat16
  leaves = jax.tree_util.tree_leaves((run.state.params, run.state.opt_state))
  assert all(leaf.dtype in (np.float32, np.int32) for leaf in leaves)
  steps = train.compile_train_steps(run)
  # The step's HLO multiplies in bfloat16.
  assert 'bf16' in steps[64].as_text()
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8),
           'label': rng.integers(0, 10, (16,), dtype=np.int32)}
  state, metrics = steps[64](run.state, parallel.to_global(batch, run.mesh))
  assert np.isfinite(float(metrics.compute()['loss']))
  assert jax.tree_util.tree_leaves(state.params)[0].dtype == np.float32


def test_divergence_stops_before_a_bad_state_is_saved(small_data, tmp_path):
  import orbax.checkpoint as ocp
  # The rate warms up over 2 epochs (10 steps) to 1e4: the first steps are
  # fine and saved, then the loss blows up.
  config = small_config(small_data, learning_rate=1e4, warmup_epochs=2.0,
                        checkpoint_every_steps=1, log_every_steps=100,
                        keep_latest_checkpoints=100)
  with pytest.raises(FloatingPointError, match='diverged'):
    train.train_and_evaluate(config, str(tmp_path))
  saved = [name for name in os.listdir(tmp_path / 'checkpoints') if name.isdigit()]
  assert saved, 'the run diverged before its first save: the test checks nothing'
  for name in saved:  # Every checkpoint left behind is a good one.
    state = ocp.StandardCheckpointer().restore(tmp_path / 'checkpoints' / name / 'state')
    assert all(np.isfinite(np.asarray(leaf)).all()
               for leaf in jax.tree_util.tree_leaves(state['params']))


def test_workdir_of_another_config_is_refused_unless_allowed(small_data, tmp_path):
  train.train_and_evaluate(small_config(small_data, num_epochs=1), str(tmp_path))
  changed = small_config(small_data, num_epochs=2, learning_rate=0.5)
  with pytest.raises(ValueError, match=r'learning_rate: 0.01 -> 0.5; num_epochs: 1 -> 2'):
    train.train_and_evaluate(changed, str(tmp_path))
  # Logging and saving cadence may change freely; told to, other changes go on.
  train.train_and_evaluate(small_config(small_data, num_epochs=1, log_every_steps=2),
                           str(tmp_path))
  changed.allow_config_change = True
  assert train.train_and_evaluate(changed, str(tmp_path))['num_examples'] == 30


def test_tensorboard_gets_metrics_images_and_a_profile(small_data, tmp_path):
  import tensorflow as tf
  config = small_config(small_data, num_epochs=2, profile_steps=2, profile_first_step=2)
  train.train_and_evaluate(config, str(tmp_path))
  tags = set()
  for name in os.listdir(tmp_path):
    if name.startswith('events.out.tfevents'):
      for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name)):
        tags.update(value.tag for value in event.summary.value)
  assert {'train_loss', 'train_top1', 'train_learning_rate', 'eval_top1', 'eval_top5',
          'train_images_per_sec', 'checkpoint_pause_ms', 'train_augmented'} <= tags, tags
  traces = [f for _, _, files in os.walk(tmp_path / 'plugins' / 'profile')
            for f in files if f.endswith('.xplane.pb')]
  assert traces


def test_train_batches_follow_the_epochs_across_boundaries(small_data):
  # 5 steps per epoch, 3 epochs. Steps 3..11 are batches 3-4 of epoch 0
  # (64 px), all 5 of epoch 1 (48 px) and the first 2 of epoch 2 (64 px).
  config = small_config(small_data, num_epochs=3)
  run = train.setup(config)
  assert (run.steps_per_epoch, run.total_steps) == (5, 15)
  got = list(train.train_batches(run, 3, 12))

  def epoch(number, size, steps, skip=0):
    return list(input_pipeline.train_dataset(
        run.config, epoch=number, image_size=size, local_batch_size=16,
        steps=steps, skip_batches=skip).as_numpy_iterator())

  expected = epoch(0, 64, 5, skip=3) + epoch(1, 48, 5) + epoch(2, 64, 5)[:2]
  assert len(got) == len(expected) == 9
  for a, b in zip(got, expected):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
