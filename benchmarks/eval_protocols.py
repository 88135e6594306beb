"""The test protocols on a trained checkpoint: top-1, top-5, images/s, compilations.

Restores the checkpoint `--config.eval` selects in WORKDIR (by default the best
one) and scores the whole validation split with each protocol: the center crop,
ten views, the full image (alone and with its mirror image), and multi-scale
full images and ten views at `config.eval.scales`. Each protocol runs twice:
the compilations are counted on the first pass, images/s is timed on the second
(warm) pass, input pipeline included. Prints one table (markdown).

  python main.py --workdir=runs/tiny                     # train the default
  python benchmarks/eval_protocols.py --workdir=runs/tiny
  python benchmarks/eval_protocols.py --config=configs/classification/sppnet_mult.py \\
      --workdir=DIR --config.data_dir=... --protocols=center,ten_view
"""

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# name -> config.eval fields
PROTOCOLS = {
    'center': dict(protocol='center'),
    'ten_view': dict(protocol='ten_view'),
    'full_image': dict(protocol='full_image'),
    'full_image_flip': dict(protocol='full_image', flip=True),
    'feature_map_views': dict(protocol='feature_map_views'),
    'multi_scale': dict(protocol='multi_scale', scale_views='full_image'),
    'multi_scale_ten_view': dict(protocol='multi_scale', scale_views='ten_view'),
}

config_flags.DEFINE_config_file('config', 'configs/classification/tiny.py', 'Recipe of the run.',
                                lock_config=True)
flags.DEFINE_string('workdir', 'runs/tiny', 'The trained run.')
flags.DEFINE_list('protocols', list(PROTOCOLS), f'Rows: any of {list(PROTOCOLS)}.')
FLAGS = flags.FLAGS


def _describe(config, fields) -> str:
  if fields['protocol'] == 'multi_scale':
    return f'{fields["scale_views"]} at {tuple(config.eval.scales)}'
  if fields['protocol'] == 'feature_map_views':
    return (f'{config.eval_size} windows pooled at {tuple(config.eval.scales)}, '
            '+ mirror')
  if fields['protocol'] == 'full_image':
    return (f'short side {config.eval_resize}, step {config.eval.full_image_step}'
            + (', + mirror' if fields.get('flip') else ''))
  return f'short side {config.eval_resize}, crop {config.eval_size}'


def main(argv):
  del argv
  from sppnet_jax import runtime  # pylint: disable=g-import-not-at-top
  runtime.prefer_fast_cpu_convolutions()
  runtime.keep_tensorflow_off_accelerators()
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification import eval_views, evaluate  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification.config import validate_config  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification.restore import restore  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import compile_count  # pylint: disable=g-import-not-at-top

  unknown = set(FLAGS.protocols) - set(PROTOCOLS)
  if unknown:
    sys.exit(f'error: unknown --protocols {sorted(unknown)}: use {list(PROTOCOLS)}.')
  restored = restore(FLAGS.config, FLAGS.workdir, with_data=True)
  run, params = restored.run, restored.params
  eval_step = evaluate.make_eval_step(run.model, run.mesh,
                                      run.state_sharding.params)
  print(f'checkpoint {restored.path} (step {restored.step}); '
        f'{run.info.num_eval_examples} '
        f'validation images; {jax.device_count()} {jax.default_backend()} '
        f'device(s)', flush=True)
  rows = []
  for name in FLAGS.protocols:
    config = run.config.copy_and_resolve_references()
    config.eval.update(PROTOCOLS[name])
    validate_config(config)
    # Each row counts its own compilations; the timed pass compiles nothing.
    view_step = evaluate.make_view_step(run.model, evaluate.local_mesh(),
                                        eval_views.view_spec(config))
    with compile_count.compilations() as compiled:
      evaluate.evaluate_protocol(eval_step, run.model, params, config, run.mesh,
                                 source=run.source, view_step=view_step)
    start = time.perf_counter()
    metrics = evaluate.evaluate_protocol(eval_step, run.model, params, config,
                                         run.mesh, source=run.source,
                                         view_step=view_step)
    seconds = time.perf_counter() - start
    rows.append((name, _describe(config, PROTOCOLS[name]), metrics, seconds,
                 sum(n in ('eval_step', 'view_eval_step') for n in compiled)))
    print(f'{name}: top-1 {100 * metrics["top1"]:.2f}%', flush=True)

  print('\n| protocol | views | top-1 % | top-5 % | examples | images/s | '
        'compilations |')
  print('|---|---|---|---|---|---|---|')
  for name, views, metrics, seconds, compilations in rows:
    print(f'| {name} | {views} | {100 * metrics["top1"]:.2f} | '
          f'{100 * metrics["top5"]:.2f} | {metrics["num_examples"]} | '
          f'{metrics["num_examples"] / seconds:.0f} | {compilations} |')


if __name__ == '__main__':
  app.run(main)
