"""Training steps/s fed by the real input pipeline vs by batches held in memory.

Uses the project's own training pieces (train.setup, train.compile_train_steps,
train.train_batches, parallel.prefetch_to_mesh) and times `--steps` train steps
that cross an epoch boundary (the middle of the window), fed
  pipeline: by train.train_batches through prefetch_to_mesh, exactly as the
    training loop is fed: the next epoch's pipeline opened while the current one
    runs (sppnet_jax/lookahead.py);
  in turn: by the same epochs' pipelines opened one after the other when the
    previous one ends (the loop before lookahead), to show what that costs;
  memory: by the same batches, read beforehand into numpy arrays, through the
    same prefetch_to_mesh (so all pay the same host-to-device copies).
The clock starts when the first step of the window is done (a run's start-up
happens once; the epoch boundaries happen every epoch). The feeds alternate for
`--rounds` rounds (round r crosses from epoch r to r+1; the order turns every
round). The table gives each one's median steps/s and the median over rounds of
its speed relative to `memory` in the same round (robust to a load that drifts
between rounds): 1.0 means that the input pipeline costs the training nothing;
on a CPU the tf.data threads share the cores with the step.

Default: the embedded recipe (configs/tiny.py: SPP-net at a quarter width,
112/96-pixel crops by epoch, batch 32) on its generated set. --data=jpeg: the
ImageNet-like 500x375 JPEGs of benchmarks/input_pipeline.py (written if missing)
with full-width SPP-net at 224 (configs/sppnet_single.py) at a small batch.

  python benchmarks/pipeline_vs_memory.py [--steps 20] [--rounds 8]
  python benchmarks/pipeline_vs_memory.py --data=jpeg [--batch 8] [--steps 8]
"""

import argparse
import itertools
import os
import runpy
import statistics
import tempfile
import time

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'configs', 'classification')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def make_config(args):
  recipe = lambda name: runpy.run_path(os.path.join(RECIPES, f'{name}.py'))[
      'get_config']()
  if args.data == 'embedded':
    config = recipe('tiny')
  else:
    import input_pipeline as pipeline_bench  # pylint: disable=g-import-not-at-top
    root = args.dir or os.path.join(tempfile.gettempdir(), 'sppnet_bench_jpegs')
    if not os.path.isdir(os.path.join(root, 'val')):
      print(f'Writing {2 * args.num_images} JPEGs to {root} ...', flush=True)
      pipeline_bench.write_images(root, args.num_images)
    config = recipe('sppnet_single')
    config.update(dataset='imagefolder', data_dir=root, eval_split='val',
                  num_classes=-1, batch_size=8)
  if args.batch:
    config.batch_size = args.batch
  if args.data_threads >= 0:
    config.data_threads = args.data_threads
  return config


def time_steps(compiled, state, batches, mesh):
  """(state, seconds, steps) of one train step per batch of `batches`, fed
  through prefetch_to_mesh as the training loop does, timed from the end of
  the first step."""
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import parallel  # pylint: disable=g-import-not-at-top
  step = lambda state, batch: compiled[batch['image'].shape[1]](state, batch)[0]
  batches = parallel.prefetch_to_mesh(batches, mesh)
  state = jax.block_until_ready(step(state, next(batches)))
  start, count = time.perf_counter(), 0
  for batch in batches:
    state = step(state, batch)
    count += 1
  jax.block_until_ready(state)
  return state, time.perf_counter() - start, count


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', choices=('embedded', 'jpeg'), default='embedded')
  parser.add_argument('--steps', type=int, default=0,
                      help='steps per round (default 20; 8 with jpeg)')
  parser.add_argument('--rounds', type=int, default=8)
  parser.add_argument('--batch', type=int, default=0,
                      help="global batch (default: the recipe's; 8 with jpeg)")
  parser.add_argument('--dir', default='', help='--data=jpeg: the JPEG folder')
  parser.add_argument('--num_images', type=int, default=512,
                      help='--data=jpeg: JPEGs per split, when writing them')
  parser.add_argument('--data_threads', type=int, default=-1,
                      help="config.data_threads (default: the recipe's)")
  args = parser.parse_args()
  steps = args.steps or (20 if args.data == 'embedded' else 8)

  from sppnet_jax import runtime  # pylint: disable=g-import-not-at-top
  runtime.prefer_fast_cpu_convolutions()  # as main.py: before JAX starts
  runtime.keep_tensorflow_off_accelerators()
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification import input_pipeline, train  # pylint: disable=g-import-not-at-top

  config = make_config(args)
  input_pipeline.prepare_data(config)
  config.num_epochs = args.rounds + 2
  run = train.setup(config)
  config, mesh = run.config, run.mesh
  if run.steps_per_epoch < steps:
    raise SystemExit(f'--steps {steps} is more than an epoch '
                     f'({run.steps_per_epoch} steps): lower it.')
  start = time.perf_counter()
  compiled = train.compile_train_steps(run)
  compile_s = time.perf_counter() - start

  def window(epoch):
    """The steps of round `epoch`: across the end of that epoch."""
    first = (epoch + 1) * run.steps_per_epoch - steps // 2
    return first, first + steps

  feeds = {
      'pipeline': lambda epoch: train.train_batches(run, *window(epoch)),
      'in turn': lambda epoch: itertools.chain.from_iterable(
          part.open() for part in train.epoch_parts(run, *window(epoch))),
  }
  state = run.state
  for feed in feeds.values():  # warm-up: the last epochs, not timed
    state, _, _ = time_steps(compiled, state, feed(args.rounds), mesh)
  names = list(feeds) + ['memory']
  seconds = {name: [] for name in names}
  for epoch in range(args.rounds):
    held = list(train.train_batches(run, *window(epoch)))
    turn = epoch % len(names)
    for name in names[turn:] + names[:turn]:
      batches = iter(held) if name == 'memory' else feeds[name](epoch)
      state, elapsed, timed_steps = time_steps(compiled, state, batches, mesh)
      seconds[name].append(elapsed)

  rates = {name: timed_steps / statistics.median(times)
           for name, times in seconds.items()}
  sizes = '/'.join(str(s) for s in config.train_sizes)
  print()
  print(f'{config.model} x{config.width_multiplier} on {config.dataset}, '
        f'{sizes}-pixel crops, global batch {config.batch_size}, '
        f'{run.steps_per_epoch} steps per epoch, '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s), '
        f'{os.cpu_count()} CPU cores, {config.data_threads or os.cpu_count()} '
        f'tf.data threads; {timed_steps} timed steps per round across an epoch '
        f'boundary, median of {args.rounds} alternating rounds; compile '
        f'{compile_s:.0f} s.')
  print(f'| {"feed":<8} | {"steps/s":>8} | {"images/s":>8} | {"/ memory":>8} '
        f'| seconds per round')
  print(f'|{"-" * 10}|{"-" * 9}:|{"-" * 9}:|{"-" * 9}:|{"-" * 19}')
  for name, times in seconds.items():
    rounds = ', '.join(f'{t:.2f}' for t in times)
    relative = statistics.median(
        memory / t for memory, t in zip(seconds['memory'], times))
    print(f'| {name:<8} | {rates[name]:>8.2f} | '
          f'{rates[name] * config.batch_size:>8.1f} | {relative:>8.3f} | '
          f'{rounds}')


if __name__ == '__main__':
  main()
