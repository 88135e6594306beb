"""--mode=eval on saved checkpoints, on another device count than training had."""

import json
import os
import subprocess
import sys

import pytest

from sppnet_jax import train
from tests.helpers import small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _eval(data, workdir, *overrides):
  command = [sys.executable, 'main.py', '--mode=eval', '--config=tests/small_recipe.py',
             f'--workdir={workdir}', f'--config.data_dir={data}',
             '--config.num_epochs=2', *overrides]
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES='8')
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
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
  here = train.evaluate_checkpoint(config, workdir)
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
  command = [sys.executable, 'main.py', '--mode=eval', '--config=tests/small_recipe.py',
             f'--workdir={workdir}', f'--config.data_dir={data}',
             '--config.num_epochs=2', '--config.eval.checkpoint_step=7']
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: no checkpoint of step 7')


def test_eval_mode_with_another_protocol(trained):
  data, workdir, _ = trained
  line, _ = _eval(data, workdir, '--config.eval.checkpoint_step=10',
                  '--config.eval.protocol=full_image')
  assert line.startswith('checkpoint step 10 (full_image) validation: top-1')
  assert line.endswith('on 30 examples')
  with open(os.path.join(workdir, 'eval', 'metrics_step_10_full_image.json')) as f:
    assert json.load(f)['protocol'] == 'full_image'
