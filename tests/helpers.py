"""Shared test helpers: a small generated image folder, the small config (locked:
a misspelled override fails), and running main.py in a subprocess."""

import os
import subprocess
import sys

from configs.classification import tiny
from sppnet_jax.classification import embedded_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_RECIPE = 'tests/small_recipe.py'


def small_dataset(root: str, train_per_class: int = 8, val_per_class: int = 3) -> str:
  """The embedded set at a test size: 10 classes, 80 train and 30 val images."""
  return embedded_data.ensure_embedded_dataset(
      os.path.join(root, 'data'), num_train_per_class=train_per_class,
      num_val_per_class=val_per_class)


def small_config(data_dir: str, **overrides):
  """The tiny recipe shrunk to seconds: narrow model, 64/48-pixel inputs."""
  config = tiny.get_config()
  config.lock()
  config.update(dict(
      data_dir=data_dir, width_multiplier=0.1, fc_dim=16, train_sizes=(64, 48),
      eval_size=64, eval_resize=72, batch_size=16, eval_batch_size=16,
      num_epochs=3, log_every_steps=5, checkpoint_every_steps=5,
      shuffle_buffer_size=128, profile_steps=0))
  config.update(overrides)
  return config


def main_command(*args, recipe: str = SMALL_RECIPE) -> list[str]:
  """`python main.py --config=RECIPE ARGS...`, to run from ROOT."""
  return [sys.executable, 'main.py', f'--config={recipe}', *args]


def _env(devices: int | None) -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  if devices:
    env['JAX_NUM_CPU_DEVICES'] = str(devices)
  return env


def run_main(*args, devices: int | None = None, timeout: float = 600,
             recipe: str = SMALL_RECIPE) -> subprocess.CompletedProcess:
  """Runs main.py to its end; stdout and stderr captured apart."""
  return subprocess.run(main_command(*args, recipe=recipe), cwd=ROOT,
                        env=_env(devices), capture_output=True, text=True,
                        timeout=timeout)


def start_main(*args, devices: int | None = None) -> subprocess.Popen:
  """Starts main.py; stdout and stderr merged into `.stdout`."""
  return subprocess.Popen(main_command(*args), cwd=ROOT, env=_env(devices),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def conv5_cells(lo: float, hi: float, cells: int) -> slice:
  """The conv5 cells of ZF-5 whose receptive-field centres (image coordinate
  20.5 + 16 j, pixel 20 + 16 j) lie inside [lo, hi): the paper's projection,
  re-derived here as the tests' reference."""
  inside = [j for j in range(cells) if lo < 20.5 + 16 * j < hi]
  return slice(inside[0], inside[-1] + 1)


def tree_bytes(root: str) -> dict:
  """{path relative to root: bytes} of every file below root."""
  out = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


# MATLAB's 0:0.1:1 (the VOC devkit's recall thresholds), value for value: its
# colon operator counts the upper half down from 1, so 0.6 and 0.7 are the
# literals, and 0.3 is 3 * 0.1.
MATLAB_0_TO_1 = (0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8,
                 0.9, 1.0)
