"""The training loop end to end on a small generated image folder."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from sppnet_jax.classification import eval_mode, input_pipeline, train
from sppnet_jax.core import compile_count, parallel
from sppnet_jax.errors import CheckpointError, ConfigError, TrainingDivergedError
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
  assert metrics['skipped_images'] == 0
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['10', '15']
  assert os.listdir(tmp_path / 'best')
  # The returned metrics are those of the final state: the step-15 checkpoint,
  # restored and scored again in eval mode, gives the same figures.
  config.eval.checkpoint_step = 15
  again = eval_mode.evaluate_checkpoint(config, str(tmp_path))
  assert again['num_examples'] == 30
  assert again['top1'] == pytest.approx(metrics['top1'], abs=1e-9)
  assert again['top5'] == pytest.approx(metrics['top5'], abs=1e-9)
  assert again['loss'] == pytest.approx(metrics['loss'], rel=1e-6)


def test_rerun_resumes_and_eval_mode_scores_the_best(small_data, tmp_path):
  config = small_config(small_data, num_epochs=2, keep_best_checkpoints=1,
                        keep_latest_checkpoints=2)
  first = train.train_and_evaluate(config, str(tmp_path))
  again = train.train_and_evaluate(config, str(tmp_path))  # Nothing left to train.
  assert again == first
  # Each epoch's state scored on its own (both are in checkpoints/).
  by_step = {}
  for step in (5, 10):
    config.eval.checkpoint_step = step
    by_step[step] = eval_mode.evaluate_checkpoint(config, str(tmp_path))
  config.eval.checkpoint_step = -1  # The default: the best one.
  scored = eval_mode.evaluate_checkpoint(config, str(tmp_path))
  assert scored['num_examples'] == 30
  assert scored['checkpoint'] == str(tmp_path / 'best' / str(scored['step']))
  best_top1 = max(m['top1'] for m in by_step.values())
  assert scored['top1'] == best_top1
  if by_step[5]['top1'] != by_step[10]['top1']:  # Not a tie: one right answer.
    assert scored['step'] == max(by_step, key=lambda s: by_step[s]['top1'])
  assert scored['loss'] == by_step[scored['step']]['loss']


def test_checkpoint_of_another_model_is_a_clear_error(small_data, tmp_path):
  train.train_and_evaluate(small_config(small_data, num_epochs=1), str(tmp_path))
  other = small_config(small_data, num_epochs=2, spp_levels=(4, 2, 1))
  with pytest.raises(CheckpointError, match=r'spp_levels: checkpoint \[6, 3, 2, 1\]'):
    train.train_and_evaluate(other, str(tmp_path))
  zfnet = small_config(small_data, num_epochs=2, model='zfnet', train_sizes=(64,))
  with pytest.raises(CheckpointError, match="model: checkpoint 'sppnet', config 'zfnet'"):
    train.train_and_evaluate(zfnet, str(tmp_path))
  # Another class count (a model for another data set) against the same files.
  from sppnet_jax.core import checkpoints
  five = small_config(small_data, num_classes=5)
  store = checkpoints.Checkpoints(str(tmp_path), five)
  with pytest.raises(CheckpointError, match='num_classes: checkpoint 10, config 5'):
    store.restore(store.latest, store.latest_step(), abstract_state=None)
  store.close()


@pytest.mark.parametrize('overrides, message', [
    (dict(num_classes=7), 'config.num_classes=7 but the embedded data has 10 '
     'classes: set --config.num_classes=10 (or -1 to follow the data).'),
    (dict(batch_size=0), 'config.batch_size=0 must be a positive multiple of the '
     'device count: set --config.batch_size to one, e.g. 256.'),
    (dict(train_sizes=(24,)), 'train_sizes=(24,) and eval_size=64 must be at '
     'least 31 (the smallest input ZF-5 accepts): raise them.'),
    (dict(architecture='vgg16'), "config.architecture='vgg16' is not one of "
     "('zf5', 'convnet5', 'overfeat5', 'overfeat7'): set --config.architecture "
     'to one of them.'),
    (dict(model='zfnet', architecture='overfeat7', train_sizes=(64,)),
     "model zfnet is ZF-5's no-SPP net, not overfeat7's: use "
     '--config.model=nospp.'),
])
def test_config_errors_are_one_line(small_data, overrides, message):
  with pytest.raises(ConfigError) as error:
    train.setup(small_config(small_data, **overrides))
  assert str(error.value) == message and '\n' not in str(error.value)


def test_per_step_size_schedule_compiles_once_per_size(small_data, tmp_path):
  config = small_config(small_data, num_epochs=1, size_schedule='step')
  with compile_count.compilations() as compiled:
    metrics = train.train_and_evaluate(config, str(tmp_path))
  # Batches alternate 64, 48, 64, ...: one compilation for each size.
  assert compiled.count('train_step') == 2, compiled
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
  state, sums = steps[64](run.state, parallel.to_global(batch, run.mesh))
  assert np.isfinite(float(sums['loss'])) and int(sums['count']) == 16
  assert jax.tree_util.tree_leaves(state.params)[0].dtype == np.float32


def test_divergence_stops_before_a_bad_state_is_saved(small_data, tmp_path):
  import orbax.checkpoint as ocp
  # The rate warms up over 2 epochs (10 steps) to 1e4: the first steps are
  # fine and saved, then the loss blows up.
  config = small_config(small_data, learning_rate=1e4, warmup_epochs=2.0,
                        checkpoint_every_steps=1, log_every_steps=100,
                        keep_latest_checkpoints=100)
  with pytest.raises(TrainingDivergedError, match='diverged'):
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
  with pytest.raises(ConfigError, match=r'learning_rate: 0.01 -> 0.5; num_epochs: 1 -> 2'):
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


def _scalars(folder) -> dict:
  """{tag: {step: value}} of the TensorBoard events in `folder`."""
  import tensorflow as tf
  found = {}
  for name in os.listdir(folder):
    if name.startswith('events.out.tfevents'):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
        for value in event.summary.value:
          number = np.asarray(tf.make_ndarray(value.tensor) if value.HasField(
              'tensor') else value.simple_value)
          if number.ndim == 0 and number.dtype.kind in 'fiu':  # scalars only
            found.setdefault(value.tag, {})[event.step] = float(number)
  return found


def test_skipped_images_are_reported_in_metrics_tensorboard_and_json(small_data,
                                                                     tmp_path):
  data = str(tmp_path / 'data')
  shutil.copytree(small_data, data)
  for split, number in (('train', 2), ('val', 1)):
    for i in range(number):
      with open(os.path.join(data, split, 'ring', f'zz_corrupt{i}.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated')
  # 82 training files: still 5 steps of 16 per epoch; 31 validation files.
  workdir = tmp_path / 'run'
  config = small_config(data, num_epochs=1, log_every_steps=5)
  metrics = train.train_and_evaluate(config, str(workdir))
  assert metrics['num_examples'] == 30 and metrics['skipped_images'] == 1
  scalars = _scalars(workdir)
  assert scalars['eval_skipped_images'] == {5: 1.0}
  # Both corrupt training files are in the epoch's 80 + look-ahead positions
  # of the only process; each is counted once.
  assert scalars['train_skipped_images'][5] == 2.0
  config.eval.protocol = 'ten_view'
  scored = eval_mode.evaluate_checkpoint(config, str(workdir))
  with open(workdir / 'eval' / 'metrics_step_5_ten_view.json') as f:
    written = json.load(f)
  assert scored['skipped_images'] == written['skipped_images'] == 1
  assert written['num_examples'] == 30
