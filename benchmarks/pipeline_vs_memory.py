"""Training steps/s fed by the real input pipeline vs by batches held in memory.

Uses the project's own training pieces (train.setup, train.compile_train_steps,
parallel.prefetch_to_mesh) and times `--steps` train steps fed
  pipeline: by input_pipeline.train_dataset through prefetch_to_mesh, as the
    training loop feeds them (the dataset is built before the clock starts; its
    iterator, and so the pipeline's start-up, is timed, not its teardown:
    tf.data now and then takes ~0.6 s to stop its autotuning, once an epoch);
  memory: by the same batches, read beforehand into numpy arrays, through the
    same prefetch_to_mesh (so both pay the same host-to-device copies);
  baseline (with --baseline FILE): as `pipeline`, with another version of
    sppnet_jax/input_pipeline.py (see benchmarks/input_pipeline.py).
They alternate for `--rounds` rounds (round r reads epoch r; the order turns
every round). The table gives each one's median steps/s and the median over
rounds of its speed relative to `memory` in the same round (robust to a load
that drifts between rounds): 1.0 means that the input pipeline costs the
training nothing; on a CPU the tf.data threads share the cores with the step.

Default: the embedded recipe (configs/tiny.py: SPP-net at a quarter width,
112-pixel crops, batch 32) on its generated set. --data=jpeg: the ImageNet-like
500x375 JPEGs of benchmarks/input_pipeline.py (written if missing) with
full-width SPP-net at 224 (configs/sppnet_single.py) at a small batch.

  python benchmarks/pipeline_vs_memory.py [--steps 20] [--rounds 8]
  python benchmarks/pipeline_vs_memory.py --data=jpeg [--batch 8] [--steps 6]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, 'benchmarks')):
  if path not in sys.path:
    sys.path.insert(0, path)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def make_config(args):
  from configs import sppnet_single, tiny  # pylint: disable=g-import-not-at-top
  if args.data == 'embedded':
    config = tiny.get_config()
  else:
    import input_pipeline as pipeline_bench  # pylint: disable=g-import-not-at-top
    root = args.dir or os.path.join(tempfile.gettempdir(), 'sppnet_bench_jpegs')
    if not os.path.isdir(os.path.join(root, 'val')):
      print(f'Writing {2 * args.num_images} JPEGs to {root} ...', flush=True)
      pipeline_bench.write_images(root, args.num_images)
    config = sppnet_single.get_config()
    config.update(dataset='imagefolder', data_dir=root, eval_split='val',
                  num_classes=-1, batch_size=8)
  if args.batch:
    config.batch_size = args.batch
  if args.data_threads >= 0:
    config.data_threads = args.data_threads
  return config


def time_steps(compiled, state, batches, mesh):
  """(state, seconds) of one train step per batch of `batches`, fed through
  prefetch_to_mesh as the training loop does."""
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax import parallel  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(state)
  start = time.perf_counter()
  for batch in parallel.prefetch_to_mesh(batches, mesh):
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  return state, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', choices=('embedded', 'jpeg'), default='embedded')
  parser.add_argument('--steps', type=int, default=0,
                      help='timed steps per round (default 20; 6 with jpeg)')
  parser.add_argument('--rounds', type=int, default=8)
  parser.add_argument('--batch', type=int, default=0,
                      help="global batch (default: the recipe's; 8 with jpeg)")
  parser.add_argument('--dir', default='', help='--data=jpeg: the JPEG folder')
  parser.add_argument('--num_images', type=int, default=512,
                      help='--data=jpeg: JPEGs per split, when writing them')
  parser.add_argument('--baseline', default='',
                      help='another input_pipeline.py to time alongside')
  parser.add_argument('--data_threads', type=int, default=-1,
                      help="config.data_threads (default: the recipe's)")
  args = parser.parse_args()
  steps = args.steps or (20 if args.data == 'embedded' else 6)

  from sppnet_jax import models  # pylint: disable=g-import-not-at-top
  models.prefer_fast_cpu_convolutions()  # as main.py: before JAX starts
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')  # tf.data only, as in main.py
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax import input_pipeline, parallel, train  # pylint: disable=g-import-not-at-top

  run = train.setup(make_config(args))
  config, mesh = run.config, run.mesh
  start = time.perf_counter()
  compiled = train.compile_train_steps(run)
  compile_s = time.perf_counter() - start
  size = train.train_size(config, 0)
  local_batch = parallel.local_batch_size(config.batch_size)

  pipelines = {'pipeline': input_pipeline}
  if args.baseline:
    import input_pipeline as pipeline_bench  # pylint: disable=g-import-not-at-top
    pipelines['baseline'] = pipeline_bench.load_module(args.baseline)

  def dataset(epoch, num_steps=steps, feed='pipeline'):
    return pipelines[feed].train_dataset(
        config, epoch=epoch, image_size=size, local_batch_size=local_batch,
        steps=num_steps, process_index=jax.process_index(),
        process_count=jax.process_count())

  state = run.state
  warmup = list(dataset(10_000, 2).as_numpy_iterator())
  state, _ = time_steps(compiled[size], state, iter(warmup), mesh)
  state, _ = time_steps(compiled[size], state,
                        dataset(10_001, 2).as_numpy_iterator(), mesh)
  names = list(pipelines) + ['memory']
  seconds = {feed: [] for feed in names}
  for epoch in range(args.rounds):
    # Datasets are built before the clock starts; their iterators are timed.
    feeds = {feed: dataset(epoch, feed=feed) for feed in pipelines}
    feeds['memory'] = list(dataset(epoch).as_numpy_iterator())
    turn = epoch % len(names)
    for feed in names[turn:] + names[:turn]:
      batches = (iter(feeds[feed]) if feed == 'memory' else
                 feeds[feed].as_numpy_iterator())
      state, elapsed = time_steps(compiled[size], state, batches, mesh)
      seconds[feed].append(elapsed)

  rates = {feed: steps / statistics.median(times)
           for feed, times in seconds.items()}
  print()
  print(f'{config.model} x{config.width_multiplier} on {config.dataset}, '
        f'{size}x{size} crops, global batch {config.batch_size}, '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s), '
        f'{os.cpu_count()} CPU cores, {config.data_threads or os.cpu_count()} '
        f'tf.data threads; {steps} steps per round, median of '
        f'{args.rounds} alternating rounds; compile {compile_s:.0f} s.')
  print(f'| {"feed":<8} | {"steps/s":>8} | {"images/s":>8} | {"/ memory":>8} '
        f'| seconds per round')
  print(f'|{"-" * 10}|{"-" * 9}:|{"-" * 9}:|{"-" * 9}:|{"-" * 19}')
  for feed, times in seconds.items():
    rounds = ', '.join(f'{t:.2f}' for t in times)
    relative = statistics.median(
        memory / t for memory, t in zip(seconds['memory'], times))
    print(f'| {feed:<8} | {rates[feed]:>8.2f} | '
          f'{rates[feed] * config.batch_size:>8.1f} | {relative:>8.3f} | '
          f'{rounds}')


if __name__ == '__main__':
  main()
