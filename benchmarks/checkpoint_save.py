"""How long a checkpoint save pauses training, for the tiny and full-size SPP-net.

Orbax saves asynchronously: `save` returns once the state is copied off the
devices and the write goes on in the background. This prints, per model, the
state size, the pause (median of the saves), and the time until the write is
complete.

  python benchmarks/checkpoint_save.py [--saves=5]
"""

import argparse
import os
import runpy
import statistics
import tempfile
import time

import jax
import numpy as np

from sppnet_jax.classification import input_pipeline, train
from sppnet_jax.core import checkpoints

TINY_RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'configs', 'classification', 'tiny.py')


def measure(name, config, saves):
  input_pipeline.prepare_data(config)
  run = train.setup(config)
  size_mb = sum(np.prod(x.shape) * x.dtype.itemsize
                for x in jax.tree_util.tree_leaves(run.state)) / 2**20
  with tempfile.TemporaryDirectory() as workdir:
    store = checkpoints.Checkpoints(workdir, run.config, run.info.class_names)
    pauses, totals = [], []
    for step in range(1, saves + 1):
      start = time.perf_counter()
      store.save_latest(step, run.state, force=True)
      pauses.append(time.perf_counter() - start)
      store.wait()
      totals.append(time.perf_counter() - start)
    store.close()
  return (f'| {name} | {size_mb:,.0f} | {1e3 * statistics.median(pauses):,.0f} | '
          f'{1e3 * statistics.median(totals):,.0f} |')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--saves', type=int, default=5)
  args = parser.parse_args()
  small = runpy.run_path(TINY_RECIPE)['get_config']()
  full = runpy.run_path(TINY_RECIPE)['get_config']()
  full.width_multiplier, full.fc_dim = 1.0, 4096
  rows = [measure('tiny recipe (width 0.25, fc 512)', small, args.saves),
          measure('SPP-net ZF-5 (10 classes)', full, args.saves)]
  print(f'{jax.device_count()} {jax.devices()[0].platform} device(s), '
        f'{args.saves} saves each, medians')
  print('| model | state MB (params + momentum) | training pause ms | write complete ms |')
  print('|---|---|---|---|')
  print('\n'.join(rows))


if __name__ == '__main__':
  main()
