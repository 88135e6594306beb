"""--mode=eval on saved checkpoints, on another device count than training had."""

import glob
import json
import os
import time

import pytest

from sppnet_jax.classification import eval_mode, train
from tests.helpers import run_main, small_config


def _eval(data, workdir, *overrides):
  result = run_main('--mode=eval', f'--workdir={workdir}', f'--config.data_dir={data}',
                    '--config.num_epochs=2', *overrides, devices=8)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.strip().splitlines()[-1], result.stderr


@pytest.fixture(scope='module')
def trained(small_data, tmp_path_factory):
  data = small_data
  workdir = str(tmp_path_factory.mktemp('run'))
  config = small_config(data, num_epochs=2, keep_best_checkpoints=2)
  train.train_and_evaluate(config, workdir)  # On this process's single device.
  return data, workdir, config


def test_eval_mode_on_eight_devices_scores_the_checkpoint(trained):
  data, workdir, config = trained
  line, log = _eval(data, workdir, '--config.eval.checkpoint_step=10')
  assert 'JAX on 8 cpu devices in 1 processes.' in log
  with open(os.path.join(workdir, 'eval', 'metrics_step_10.json')) as f:
    written = json.load(f)
  # The same checkpoint scored in this process, on one device.
  config.eval.checkpoint_step = 10
  here = eval_mode.evaluate_checkpoint(config, workdir)
  assert written['num_examples'] == here['num_examples'] == 30
  assert written['top1'] == pytest.approx(here['top1'], abs=1e-6)
  assert written['loss'] == pytest.approx(here['loss'], rel=1e-5)
  assert line.startswith('checkpoint step 10 validation: top-1')
  assert 'on 30 examples' in line
  assert any(name.startswith('events.out.tfevents')
             for name in os.listdir(os.path.join(workdir, 'eval')))


def test_eval_mode_by_path_and_errors(trained):
  data, workdir, _ = trained
  line, _ = _eval(data, '/tmp/unused_eval_workdir',
                  f'--config.eval.checkpoint_path={workdir}/checkpoints/5')
  assert line.startswith('checkpoint step 5 validation')
  result = run_main('--mode=eval', f'--workdir={workdir}', f'--config.data_dir={data}',
                    '--config.num_epochs=2', '--config.eval.checkpoint_step=7')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: no checkpoint of step 7')


@pytest.mark.parametrize('protocol, extra', [
    ('full_image', ()),
    ('feature_map_views', ('--config.eval.scales=(64, 90)',)),
])
def test_eval_mode_with_another_protocol(trained, protocol, extra):
  data, workdir, _ = trained
  line, _ = _eval(data, workdir, '--config.eval.checkpoint_step=10',
                  f'--config.eval.protocol={protocol}', *extra)
  assert line.startswith(f'checkpoint step 10 ({protocol}) validation: top-1')
  assert line.endswith('on 30 examples')
  with open(os.path.join(workdir, 'eval', f'metrics_step_10_{protocol}.json')) as f:
    written = json.load(f)
  assert written['protocol'] == protocol and written['num_examples'] == 30


@pytest.mark.parametrize('mode', ['eval', 'export', 'predict'])
def test_a_mistyped_workdir_fails_at_once_and_creates_nothing(small_data, tmp_path,
                                                             mode):
  workdir = tmp_path / 'no_such_run'
  # predict names a real image: the workdir is what is mistyped.
  image = sorted(glob.glob(os.path.join(small_data, 'val', '*', '*')))[0]
  images = [image] if mode == 'predict' else []
  start = time.perf_counter()
  result = run_main(f'--mode={mode}', f'--workdir={workdir}', *images,
                    f'--config.data_dir={small_data}')
  seconds = time.perf_counter() - start
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert lines[-1] == (f'error: no checkpoint in {workdir}: train first with the '
                       'same --workdir, or point --workdir (or '
                       '--config.eval.checkpoint_path) at a trained run.'), lines
  assert not workdir.exists() and os.listdir(tmp_path) == []
  # Before the fix the data set was listed and the steps compiled first (about
  # a minute with the embedded set); neither happens now, nor does JAX start.
  assert 'JAX on' not in result.stderr and 'Found ' not in result.stderr
  print(f'--mode={mode} with a mistyped workdir: error after {seconds:.1f} s')
